"""tools/train_classifier.py: the recipe trains a backbone on a generated shapes ImageFolder
to well above chance on a CPU, and its checkpoint initialises a backbone and a body; the
full default recipe (TrivialAugment, RandomErasing, CutMix/MixUp, label smoothing, EMA,
AMP) and WebDataset tar shards run end to end."""

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from torch import nn

from pydetectron import backbones, necks
from pydetectron.classification import write_shapes_image_folder
from pydetectron.weights import load_weights

REPO = Path(__file__).resolve().parents[2]
CHANCE = 0.25  # four classes


def load_tool():
    spec = importlib.util.spec_from_file_location("train_classifier_tool", REPO / "tools" / "train_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_image_folder(tmp_path_factory.mktemp("shapes_cls"), {"train": 400, "val": 50}, size=40)


@pytest.fixture(autouse=True)
def one_thread():
    # Two cores shared by several jobs: more threads only add contention.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def common_args(shapes, out, size=40):
    return [
        "--train", str(shapes / "train"), "--val", str(shapes / "val"), "--output-dir", str(out),
        "--train-crop-size", str(size), "--val-resize-size", str(size), "--val-crop-size", str(size),
        "--workers", "0", "--log-interval", "0",
    ]  # fmt: skip


class DetectionStyleBody(nn.Module):
    """A body as toolbox bodies hold it: `backbone` + `neck` (what TRAIN.WEIGHTS loads into)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.neck = necks.FPN(backbone.out_channels_list[-4:], 32)


@pytest.mark.slow
def test_recipe_trains_well_above_chance_and_initialises_a_body(shapes, tmp_path):
    out = tmp_path / "run"
    args = common_args(shapes, out) + [
        "--backbone", "vovnet19_slim_ese", "--recipe", "small", "--no-trivial-augment", "--min-crop-scale", "0.6",
        "--batch-size", "32", "--lr", "0.1", "--epochs", "5", "--warmup-epochs", "0.6",
    ]  # fmt: skip
    summary = load_tool().main(args)
    assert summary["best_top1"] >= 2.4 * CHANCE, summary["history"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_top1"] == summary["best_top1"] and len(metrics["history"]) == 5

    checkpoint = torch.load(out / "best.pth", weights_only=True)
    assert checkpoint["top1"] == summary["best_top1"]
    assert checkpoint["classes"] == ["circle", "square", "star", "triangle"]
    trained = {k[len("backbone.") :]: v for k, v in checkpoint["model"].items() if k.startswith("backbone.")}

    backbone = backbones.vovnet19_slim_ese(pretrained=str(out / "best.pth"))
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key

    body = DetectionStyleBody(backbones.vovnet19_slim_ese())
    report = load_weights(body, str(out / "best.pth"))
    assert sorted(report.unused) == ["head.bias", "head.weight"]
    assert report.missing and all(k.startswith("neck.") for k in report.missing)
    for key, value in body.backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_default_recipe_with_ema_and_amp_runs(shapes, tmp_path):
    out = tmp_path / "default"
    args = common_args(shapes, out, size=32) + [
        "--backbone", "darknet_yolov5n", "--batch-size", "8", "--epochs", "1", "--max-steps", "3",
        "--ema-decay", "0.9", "--ema-steps", "1", "--amp",
    ]  # fmt: skip
    tool = load_tool()
    parsed = tool.parse_args(args)
    assert (parsed.label_smoothing, parsed.mixup_alpha, parsed.cutmix_alpha, parsed.random_erasing) == (
        0.1, 0.2, 1.0, 0.1,
    )  # fmt: skip
    assert parsed.lr == pytest.approx(0.5 * 8 / 1024)
    summary = tool.main(args)
    assert summary["history"][0]["step"] == 3 and summary["history"][0]["images"] == 200
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    assert checkpoint["ema"] is True and checkpoint["settings"]["amp"] is True
    assert checkpoint["model_raw"].keys() == checkpoint["model"].keys()
    assert not torch.equal(checkpoint["model_raw"]["head.weight"], checkpoint["model"]["head.weight"])


def write_shards(folder: Path, out: Path, per_shard: int) -> str:
    """The ImageFolder as WebDataset shards: <key>.png + <key>.cls, `per_shard` samples each."""
    classes = sorted(d.name for d in folder.iterdir())
    files = sorted((path, label) for label, name in enumerate(classes) for path in (folder / name).glob("*.png"))
    out.mkdir(parents=True)
    shards = 0
    for start in range(0, len(files), per_shard):
        with tarfile.open(out / f"part-{shards:03d}.tar", "w") as archive:
            for index, (path, label) in enumerate(files[start : start + per_shard], start):
                for name, data in ((f"{index:06d}.png", path.read_bytes()), (f"{index:06d}.cls", str(label).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
        shards += 1
    return str(out / f"part-{{000..{shards - 1:03d}}}.tar")


def test_webdataset_shards_train_and_evaluate(shapes, tmp_path):
    train = write_shards(shapes / "train", tmp_path / "train_shards", per_shard=700)
    val = write_shards(shapes / "val", tmp_path / "val_shards", per_shard=80)
    out = tmp_path / "wds"
    args = common_args(shapes, out, size=32)
    args[args.index("--train") + 1], args[args.index("--val") + 1] = train, val
    args += [
        "--backbone", "darknet_yolov5n", "--webdataset", "--num-classes", "4", "--recipe", "small",
        "--batch-size", "16", "--epochs", "1", "--max-steps", "2",
    ]  # fmt: skip
    summary = load_tool().main(args)
    assert summary["history"][0]["images"] == 200
    assert torch.load(out / "checkpoint.pth", weights_only=True)["num_classes"] == 4


def test_bad_arguments_are_refused(shapes, tmp_path):
    tool = load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(common_args(shapes, tmp_path) + ["--backbone", "no_such_net"])
    with pytest.raises(SystemExit):
        tool.parse_args(common_args(shapes, tmp_path) + ["--backbone", "darknet19", "--webdataset"])
