"""tools/test_net.py on the shapes val set: AP, range files, resume, bad images, processes."""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "evaluation"))
from evaluation_fixtures import one_torch_thread, save_checkpoint, short_train, tiny_cfg  # noqa: E402
from tool_test_support import direct_ap  # noqa: E402

from pydetectron.data import build_test_dataset, ensure_shapes_dataset  # noqa: E402
from pydetectron.data.transforms import ImageReadError, read_image  # noqa: E402
from pydetectron.modeling.model_builder import build_model  # noqa: E402


def load_tool():
    spec = importlib.util.spec_from_file_location("test_net_tool", REPO / "tools" / "test_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def tool():
    return load_tool()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ensure_shapes_dataset(root / "shapes", split="val", num_images=8)
    return root


@pytest.fixture(scope="module")
def random_ckpt(data_dir, tmp_path_factory):
    cfg = tiny_cfg(data_dir)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pth", build_model(cfg), cfg)


def run(tool, ckpt, data_dir, out, *extra):
    argv = ["--dataset", "shapes", "--load_ckpt", str(ckpt), "--output_dir", str(out), "--no_cuda", "--nw", "0",
            "--data_dir", str(data_dir), *extra]  # fmt: skip
    return tool.main(argv)


class OraclePredictor:
    """Answers with the ground truth of the image it is shown (found by its pixels)."""

    def __init__(self, cfg, weights=None, device=None):
        roidb = build_test_dataset(cfg, "shapes_val")
        self.box_augmentation = SimpleNamespace(enabled=True)
        self.transform = None
        self.answers = {}
        for i in range(len(roidb)):
            entry = roidb.entry(i, with_segms=False)
            try:
                key = hashlib.sha1(read_image(entry["image"]).tobytes()).hexdigest()
            except ImageReadError:
                continue
            keep = ~entry["is_crowd"]
            self.answers[key] = (entry["boxes"][keep], entry["gt_classes"][keep])

    def predict_augmented(self, image):
        boxes, classes = self.answers[hashlib.sha1(image.tobytes()).hexdigest()]
        scores = np.linspace(0.99, 0.9, len(boxes)).astype(np.float32)
        return SimpleNamespace(boxes=boxes, scores=scores, classes=classes.astype(np.int64), masks=None, keypoints=None)


def test_ground_truth_answers_score_ap_one(tool, data_dir, random_ckpt, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setattr(tool, "Predictor", OraclePredictor)
    with caplog.at_level("INFO"):
        assert run(tool, random_ckpt, data_dir, tmp_path, "--vis") == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["shapes_val"]["bbox"]["AP"] == pytest.approx(1.0)
    # the table says its unit, the one metrics.json stores
    table = [r.getMessage() for r in caplog.records if r.name == "test_net"]
    header = table.index("COCO metrics (fractions of 1, as stored in metrics.json):")
    assert table[header + 1].split() == ["dataset", "task", "AP", "AP50", "AP75", "APs", "APm", "APl"]
    row = table[header + 2].split()
    assert row[:2] == ["shapes_val", "bbox"]
    assert [float(v) for v in row[2:]] == pytest.approx([metrics["shapes_val"]["bbox"][k] for k in
                                                         ("AP", "AP50", "AP75", "APs", "APm", "APl")], abs=5e-5)
    assert set(metrics["shapes_val"]["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in capsys.readouterr().out
    results = json.loads((tmp_path / "bbox_shapes_val_results.json").read_text())
    gt = json.loads((data_dir / "shapes" / "shapes_val" / "annotations.json").read_text())
    assert {r["category_id"] for r in results} <= {c["id"] for c in gt["categories"]}
    pictures = {p.stem: p for p in (tmp_path / "vis").glob("*.png")}  # --vis: one picture per image
    assert sorted(pictures) == sorted(Path(i["file_name"]).stem for i in gt["images"])
    for image in gt["images"]:
        picture = read_image(str(pictures[Path(image["file_name"]).stem]))
        assert picture.shape == (image["height"], image["width"], 3)


def test_bad_images_are_reported_and_skipped(tool, data_dir, random_ckpt, tmp_path, monkeypatch, caplog):
    broken = tmp_path / "data"
    ensure_shapes_dataset(broken / "shapes", split="val", num_images=8)
    images = sorted((broken / "shapes" / "shapes_val" / "images").iterdir())
    images[2].write_bytes(b"garbage")
    images[5].unlink()
    monkeypatch.setattr(tool, "Predictor", OraclePredictor)
    with caplog.at_level("WARNING"):
        assert run(tool, random_ckpt, broken, tmp_path / "out") == 0
    assert "2 of 8 images could not be processed" in caplog.text
    assert images[2].name in caplog.text and images[5].name in caplog.text
    ap = json.loads((tmp_path / "out" / "metrics.json").read_text())["shapes_val"]["bbox"]["AP"]
    assert 0.0 < ap < 1.0


def test_range_halves_merge_into_the_single_run(tool, data_dir, random_ckpt, tmp_path, monkeypatch):
    score_all = ("--set", "TEST.SCORE_THRESH", "0.0")
    assert run(tool, random_ckpt, data_dir, tmp_path / "single", *score_all) == 0
    halves = tmp_path / "halves"
    assert run(tool, random_ckpt, data_dir, halves, "--range", "0", "3", *score_all) == 0
    assert run(tool, random_ckpt, data_dir, halves, "--range", "3", "8", *score_all) == 0
    assert not (halves / "metrics.json").exists()  # --range runs only detect
    assert sorted(p.name for p in halves.glob("detections_range_*")) == [
        "detections_range_0_3.pth", "detections_range_3_8.pth"]  # fmt: skip

    def no_model(*args, **kwargs):
        raise AssertionError("the merge run must not detect again")

    monkeypatch.setattr(tool, "Predictor", no_model)
    assert run(tool, random_ckpt, data_dir, halves, *score_all) == 0
    single = json.loads((tmp_path / "single" / "bbox_shapes_val_results.json").read_text())
    merged = json.loads((halves / "bbox_shapes_val_results.json").read_text())
    assert len(single) > 100 and merged == single
    single_metrics = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert json.loads((halves / "metrics.json").read_text()) == single_metrics
    json_file = data_dir / "shapes" / "shapes_val" / "annotations.json"
    expected = direct_ap(json_file, halves / "bbox_shapes_val_results.json")
    assert single_metrics["shapes_val"]["bbox"] == pytest.approx(expected)
    # another config does not reuse these files
    monkeypatch.undo()
    calls = count_predictions(tool, monkeypatch)
    assert run(tool, random_ckpt, data_dir, halves, "--set", "TEST.SCORE_THRESH", "0.5") == 0
    assert calls["images"] == 8


def count_predictions(tool, monkeypatch):
    calls = {"images": 0}
    real = tool.Predictor

    class Counting(real):
        def predict_prepared(self, prepared):
            calls["images"] += len(prepared)
            if calls.get("stop_after") is not None and calls["images"] > calls["stop_after"]:
                raise KeyboardInterrupt
            return super().predict_prepared(prepared)

    monkeypatch.setattr(tool, "Predictor", Counting)
    return calls


def test_interrupted_run_continues_from_written_ranges(tool, data_dir, random_ckpt, tmp_path, monkeypatch):
    calls = count_predictions(tool, monkeypatch)
    calls["stop_after"] = 4
    assert run(tool, random_ckpt, data_dir, tmp_path, "--chunk_size", "3") == 130  # Ctrl-C: one line, exit 130
    assert [p.name for p in tmp_path.glob("detections_range_*")] == ["detections_range_0_3.pth"]
    calls.update(images=0, stop_after=None)
    assert run(tool, random_ckpt, data_dir, tmp_path, "--chunk_size", "3") == 0
    assert calls["images"] == 5  # entries 3..7 only
    assert (tmp_path / "metrics.json").exists()


def test_argument_errors_name_the_problem(tool, data_dir, random_ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tool.main(["--dataset", "shapes", "--load_ckpt", str(tmp_path / "nothere.pth")])
    assert "nothere.pth" in capsys.readouterr().err
    assert run(tool, random_ckpt, data_dir, tmp_path, "--dataset", "nope") == 2
    assert "test_net.py: error: --dataset: unknown dataset 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(["--range", "5", "2", "--load_ckpt", str(random_ckpt)])


@pytest.mark.slow
def test_cpu_processes_merge_into_the_single_run(tool, data_dir, random_ckpt, tmp_path):
    score_all = ("--set", "TEST.SCORE_THRESH", "0.0")
    assert run(tool, random_ckpt, data_dir, tmp_path / "single", *score_all) == 0
    assert run(tool, random_ckpt, data_dir, tmp_path / "multi", "--multi-gpu-testing", "--num_procs", "2",
               *score_all) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "multi").glob("detections_range_*")) == [
        "detections_range_0_4.pth", "detections_range_4_8.pth"]  # fmt: skip
    single = json.loads((tmp_path / "single" / "bbox_shapes_val_results.json").read_text())
    assert json.loads((tmp_path / "multi" / "bbox_shapes_val_results.json").read_text()) == single


@pytest.mark.slow
def test_short_trained_checkpoint_reports_positive_ap(tool, tmp_path_factory, tmp_path):
    """40 SGD steps on shapes_train, then the full shapes_val set (50 images).

    So short a training only starts to learn (its AP is of the order of 1e-4): the test checks
    that a trained checkpoint goes through the tool and that the AP it reports is the one
    pycocotools computes from the written results. With TEST.SCORE_THRESH 0 every image keeps
    its 100 best detections, so some overlap the ground truth and AP > 0.
    """
    data_dir = tmp_path_factory.mktemp("full_data")
    cfg = tiny_cfg(data_dir, ["FPN.RPN_ANCHOR_START_SIZE", "16"])
    model = short_train(cfg, steps=40)
    ckpt = save_checkpoint(tmp_path / "trained.pth", model, cfg)
    assert run(tool, ckpt, data_dir, tmp_path / "test", "--set", "TEST.SCORE_THRESH", "0.0") == 0
    bbox = json.loads((tmp_path / "test" / "metrics.json").read_text())["shapes_val"]["bbox"]
    assert bbox["AP"] > 0.0 and bbox["AP50"] > 0.0
    json_file = data_dir / "shapes" / "shapes_val" / "annotations.json"
    assert bbox == pytest.approx(direct_ap(json_file, tmp_path / "test" / "bbox_shapes_val_results.json"))
