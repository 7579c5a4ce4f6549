"""tools/train_net_step.py end to end on the CPU: a tiny shapes run, its files, its checkpoint, resuming."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_cfg
from pydetectron.data.catalog import unregister_dataset
from pydetectron.data.shapes import write_shapes_dataset
from pydetectron.modeling.model_builder import build_model
from pydetectron.weights import load_weights

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "train_net_step.py"
CONFIG = ROOT / "configs" / "baselines" / "e2e_faster_rcnn_R-50-FPN_1x.yaml"

# A small R-50-FPN on 64 px images (frozen AffineChannel body, gradient clipping). The config's
# batch is NUM_GPUS 1 x IMS_PER_BATCH 1; the run uses --bs 2, so the tool must turn MAX_ITER 48
# into 24, STEPS [0, 36] into [0, 18] and BASE_LR 0.0025 into 0.005. iter_size is tested in
# tests/engine/test_trainer.py.
TINY = [
    "NUM_GPUS", "1", "TRAIN.IMS_PER_BATCH", "1",
    "SOLVER.BASE_LR", "0.0025", "SOLVER.MAX_ITER", "48", "SOLVER.STEPS", "[0, 36]", "SOLVER.WARM_UP_ITERS", "4",
    "SOLVER.CLIP_GRAD_NORM", "5.0", "TRAIN.SNAPSHOT_ITERS", "8",
    "TRAIN.SCALES", "(64,)", "TRAIN.MAX_SIZE", "96", "TRAIN.BATCH_SIZE_PER_IM", "32",
    "TRAIN.RPN_BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "100", "TRAIN.RPN_POST_NMS_TOP_N", "50",
    "FPN.DIM", "32", "FAST_RCNN.MLP_HEAD_DIM", "32", "RNG_SEED", "7", "TRAIN.WEIGHTS", "",
]


def run_tool(data_dir: Path, output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, str(TOOL), "--dataset", "shapes", "--cfg", str(CONFIG), "--no_cuda", "--bs", "2",
        "--nw", "0", "--disp_interval", "1", "--output_dir", str(output_dir), *extra,
        "--set", "DATA_DIR", str(data_dir), *TINY,
    ]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process


def metrics(output_dir: Path) -> dict[int, dict]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return {entry["step"]: entry for entry in map(json.loads, lines)}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    write_shapes_dataset(data_dir / "shapes" / "shapes_train", 12, seed=0, min_side=64, max_side=112)
    output_dir = tmp_path_factory.mktemp("run")
    process = run_tool(data_dir, output_dir, "--use_tfboard")
    return data_dir, output_dir, process


@pytest.mark.slow
def test_tiny_shapes_run_adapts_the_schedule_and_writes_its_files(first_run):
    _, output_dir, process = first_run
    assert "SOLVER.MAX_ITER: 48 --> 24" in process.stdout
    assert "BASE_LR linearly with the effective batch size: 0.0025 --> 0.005" in process.stdout
    saved_cfg = yaml.safe_load((output_dir / "config.yaml").read_text())
    assert saved_cfg["SOLVER"]["STEPS"] == [0, 18] and saved_cfg["SOLVER"]["MAX_ITER"] == 24
    assert saved_cfg["TRAIN"]["IMS_PER_BATCH"] == 2 and saved_cfg["MODEL"]["NUM_CLASSES"] == 5
    ckpt_names = sorted(p.name for p in (output_dir / "ckpt").iterdir())
    assert ckpt_names == ["last_checkpoint", "model_step15.pth", "model_step23.pth", "model_step7.pth"]
    logged = metrics(output_dir)
    assert sorted(logged) == list(range(24))
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logged.values())
    assert logged[0]["lr"] == pytest.approx(0.005 / 3) and logged[18]["lr"] == pytest.approx(0.0005)
    assert logged[23]["loss"] < logged[0]["loss"]
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls", "memory_mb", "eta_seconds",
            "grad_norm"} <= set(logged[23])
    assert list(output_dir.glob("events.out.tfevents.*"))
    assert "step 23/24" in process.stdout


@pytest.mark.slow
def test_checkpoint_loads_into_a_model_built_from_its_own_config(first_run):
    _, output_dir, _ = first_run
    checkpoint = torch.load(output_dir / "ckpt" / "model_step23.pth", weights_only=True)
    assert checkpoint["step"] == 23 and checkpoint["batch_size"] == 2
    cfg = get_cfg()
    merge_cfg_from_cfg(yaml.safe_load(checkpoint["cfg"]), target=cfg)
    assert_and_infer_cfg(target=cfg)
    model = build_model(cfg)
    report = load_weights(model, output_dir / "ckpt" / "model_step23.pth")
    assert report.missing == [] and report.unused == []
    for name, value in model.state_dict().items():
        assert torch.equal(value, checkpoint["model"][name]), name


@pytest.mark.slow
def test_resume_through_the_tool_repeats_the_losses(first_run, tmp_path):
    data_dir, output_dir, _ = first_run
    run_tool(data_dir, tmp_path, "--resume", "--load_ckpt", str(output_dir / "ckpt" / "model_step15.pth"))
    resumed, original = metrics(tmp_path), metrics(output_dir)
    assert sorted(resumed) == list(range(16, 24))
    keys = ("loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls", "lr")
    for step in range(16, 24):
        assert [resumed[step][k] for k in keys] == [original[step][k] for k in keys], step
    final = torch.load(tmp_path / "ckpt" / "model_step23.pth", weights_only=True)["model"]
    expected = torch.load(output_dir / "ckpt" / "model_step23.pth", weights_only=True)["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def load_tool_module():
    spec = importlib.util.spec_from_file_location("train_net_step", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tool():
    yield load_tool_module()
    for name in ("my_set", "other"):
        unregister_dataset(name)


def test_dataset_flag_forms(tool, tmp_path):
    args = tool.parse_args(["--dataset", "coco2017", "--cfg", "x.yaml"])
    assert tool.resolve_datasets(args) == (("coco_2017_train",), ("coco_2017_val",))
    args = tool.parse_args(["--dataset", "shapes_train,shapes_val", "--cfg", "x.yaml"])
    assert tool.resolve_datasets(args) == (("shapes_train", "shapes_val"), ("shapes_train",))
    spec = f"my_set={tmp_path / 'a.json'}:{tmp_path / 'images'}"
    args = tool.parse_args(["--dataset", spec, "--cfg", "x.yaml"])
    assert tool.resolve_datasets(args) == (("my_set",), ("my_set",))
    args = tool.parse_args(["--dataset", "other", "--dataset_json", "b.json", "--image_dir", "imgs", "--cfg", "x"])
    assert tool.resolve_datasets(args) == (("other",), ("other",))
    with pytest.raises(SystemExit, match="unknown dataset"):
        tool.resolve_datasets(tool.parse_args(["--dataset", "no_such_set", "--cfg", "x.yaml"]))
    with pytest.raises(SystemExit, match="--resume needs --load_ckpt"):
        tool.resume_path_for(tool.parse_args(["--dataset", "shapes", "--cfg", "x.yaml", "--resume"]))


def test_load_detectron_reports_clearly(tool, tmp_path):
    pkl = tmp_path / "model_final.pkl"
    pkl.write_bytes(b"not a pickle")
    args = tool.parse_args(["--dataset", "shapes", "--cfg", "x.yaml", "--load_detectron", str(pkl)])
    with pytest.raises(SystemExit, match="^--load_detectron: "):
        tool.initialise_weights(torch.nn.Linear(2, 2), args, resuming=False)
    with pytest.raises(SystemExit, match="--resume is not supported with --load_detectron"):
        tool.resume_path_for(tool.parse_args(["--dataset", "s", "--cfg", "x", "--load_detectron", "a", "--resume"]))
