"""tools/demo.py (what `make demo` runs) end to end on a tiny shapes run: train, evaluate, draw, reuse."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pydetectron.data.shapes import write_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tools" / "demo.py"

# The shipped Mask R-CNN demo config shrunk to 64 px images and 4 steps.
TINY = [
    "SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "[0, 3]", "SOLVER.WARM_UP_ITERS", "2", "TRAIN.SNAPSHOT_ITERS", "100",
    "TRAIN.SCALES", "(64,)", "TRAIN.MAX_SIZE", "96", "TEST.SCALE", "64", "TEST.MAX_SIZE", "96",
    "TRAIN.BATCH_SIZE_PER_IM", "32", "TRAIN.RPN_BATCH_SIZE_PER_IM", "32", "TRAIN.RPN_PRE_NMS_TOP_N", "100",
    "TRAIN.RPN_POST_NMS_TOP_N", "50", "TEST.RPN_PRE_NMS_TOP_N", "100", "TEST.RPN_POST_NMS_TOP_N", "50",
    "RESNETS.WIDTH_PER_GROUP", "8", "FPN.DIM", "32", "FAST_RCNN.MLP_HEAD_DIM", "32", "MRCNN.DIM_REDUCED", "16",
]  # fmt: skip


def run_demo(data_dir: Path, output_dir: Path, *extra: str) -> str:
    command = [
        sys.executable, str(DEMO), "mask", "--data_dir", str(data_dir), "--output_dir", str(output_dir),
        "--num_pictures", "2", "--thresh", "0.0", "--disp_interval", "1", *extra, "--set", *TINY,
    ]  # fmt: skip
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """A first demo (trains), a second one (reuses) and a third with --retrain."""
    data_dir = tmp_path_factory.mktemp("data")
    write_shapes_dataset(data_dir / "shapes" / "shapes_train", 6, seed=0, min_side=64, max_side=96)
    write_shapes_dataset(data_dir / "shapes" / "shapes_val", 3, seed=1, min_side=64, max_side=96)
    output_dir = tmp_path_factory.mktemp("demo")
    first = run_demo(data_dir, output_dir)
    checkpoint = output_dir / "train" / "ckpt" / "model_step3.pth"
    first_mtime = checkpoint.stat().st_mtime_ns
    second = run_demo(data_dir, output_dir)
    second_mtime = checkpoint.stat().st_mtime_ns
    third = run_demo(data_dir, output_dir, "--retrain")
    return output_dir, (first, second, third), (first_mtime, second_mtime, checkpoint.stat().st_mtime_ns)


@pytest.mark.slow
def test_demo_trains_evaluates_and_draws(demo_runs):
    output_dir, (first, _, _), _ = demo_runs
    assert "step 3/4" in first and "eta" in first and "loss_mask" in first  # visible training progress
    assert "Evaluate annotation type *bbox*" in first and "Evaluate annotation type *segm*" in first
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in first  # the pycocotools summary
    metrics = json.loads((output_dir / "test" / "metrics.json").read_text())
    assert set(metrics["shapes_val"]) >= {"bbox", "segm"}
    pictures = sorted(p.name for p in (output_dir / "pictures").iterdir())
    assert pictures == ["000001.png", "000002.png"]
    checkpoint = output_dir / "train" / "ckpt" / "model_step3.pth"
    assert f"checkpoint: {checkpoint}" in first
    assert f"metrics:    {output_dir / 'test' / 'metrics.json'}" in first
    box_ap = metrics["shapes_val"]["bbox"]["AP"]
    assert f"shapes_val bbox      AP {box_ap:.3f}" in first


@pytest.mark.slow
def test_second_demo_reuses_the_checkpoint_and_retrain_trains_again(demo_runs):
    _, (_, second, third), (first_mtime, second_mtime, third_mtime) = demo_runs
    assert "reusing the trained checkpoint" in second and "step 0/4" not in second
    assert second_mtime == first_mtime
    assert "Evaluate annotation type *segm*" in second
    assert "step 3/4" in third and "reusing" not in third
    assert third_mtime > first_mtime


def test_demo_rejects_a_missing_config(tmp_path):
    process = subprocess.run(
        [sys.executable, str(DEMO), "--cfg", str(tmp_path / "nope.yaml"), "--output_dir", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert process.returncode == 2
    assert f"--cfg: file not found: {tmp_path / 'nope.yaml'}" in process.stderr
