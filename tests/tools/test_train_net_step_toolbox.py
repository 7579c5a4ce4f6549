"""tools/train_net_step.py with a configs/toolbox shapes config (a `toolbox.` body) and a data loader
worker (--nw 1), initialised from a tools/train_classifier.py checkpoint named by TRAIN.WEIGHTS."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pydetectron.backbones import build_backbone
from pydetectron.classification import ImageClassifier, classifier_checkpoint, save_checkpoint
from pydetectron.data.shapes import write_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "train_net_step.py"
CONFIG = ROOT / "configs" / "toolbox" / "shapes_mask_rcnn_vovnet19_slim_ese_fpn.yaml"
TINY = [
    "SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "[0, 3]", "SOLVER.WARM_UP_ITERS", "1", "TRAIN.SNAPSHOT_ITERS", "100",
    "TRAIN.SCALES", "(64,)", "TRAIN.MAX_SIZE", "96", "TRAIN.BATCH_SIZE_PER_IM", "32",
    "TRAIN.RPN_BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "100", "TRAIN.RPN_POST_NMS_TOP_N", "50",
    "TOOLBOX.NECK_CHANNELS", "32", "FAST_RCNN.MLP_HEAD_DIM", "32", "MRCNN.DIM_REDUCED", "32", "RNG_SEED", "7",
]  # fmt: skip


@pytest.mark.slow
def test_toolbox_shapes_config_trains_through_the_tool_from_a_classifier_checkpoint(tmp_path):
    data_dir = tmp_path / "data"
    write_shapes_dataset(data_dir / "shapes" / "shapes_train", 6, seed=0, min_side=64, max_side=96)
    torch.manual_seed(0)
    classifier = ImageClassifier(build_backbone("vovnet19_slim_ese"), num_classes=4)
    weights = tmp_path / "classifier.pth"
    save_checkpoint(classifier_checkpoint(classifier, "vovnet19_slim_ese", ["a", "b", "c", "d"]), weights)
    output_dir = tmp_path / "run"
    command = [
        sys.executable, str(TOOL), "--dataset", "shapes", "--cfg", str(CONFIG), "--no_cuda", "--bs", "2",
        "--nw", "1", "--disp_interval", "1", "--output_dir", str(output_dir),
        "--set", "DATA_DIR", str(data_dir), "TRAIN.WEIGHTS", str(weights), *TINY,
    ]  # fmt: skip
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = process.stdout + process.stderr
    assert process.returncode == 0, log[-4000:]
    assert "pydetectron classifier checkpoint" in log
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    logged = {e["step"]: e for e in map(json.loads, lines) if "loss" in e}
    assert sorted(logged) == [0, 1, 2, 3]
    assert all(torch.isfinite(torch.tensor([e["loss"], e["loss_mask"]])).all() for e in logged.values())
    (last,) = sorted((output_dir / "ckpt").glob("model_step3.pth"))
    state = torch.load(last, weights_only=True)["model"]
    stem = "body.backbone.net.stem.0.conv.weight"
    start = classifier.backbone.state_dict()["stem.0.conv.weight"]
    assert stem in state and state[stem].shape == start.shape and not torch.equal(state[stem], start)  # trained
