"""Fine-tuning an 81-class Detectron R-50-FPN Faster R-CNN `.pkl` into the 5-class shapes model
through `tools/train_net_step.py --load_detectron`: class layers are skipped and listed,
everything else loads (the frozen part stays exactly the file's), and training runs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import (  # noqa: E402
    REPO,
    build,
    config_tree,
    expected_state,
    imagenet_junk,
    random_blobs,
    write_detectron_pkl,
)

from pydetectron.data.shapes import write_shapes_dataset  # noqa: E402

CONFIG = "shapes/e2e_faster_rcnn_R-50-FPN_shapes.yaml"
TINY = [
    "RESNETS.WIDTH_PER_GROUP", "8", "FPN.DIM", "16", "FAST_RCNN.MLP_HEAD_DIM", "32", "TRAIN.FREEZE_AT", "2",
    "TRAIN.SCALES", "(64,)", "TRAIN.MAX_SIZE", "96", "TRAIN.BATCH_SIZE_PER_IM", "32",
    "TRAIN.RPN_BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "100", "TRAIN.RPN_POST_NMS_TOP_N", "50",
    "SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "[0]", "SOLVER.WARM_UP_ITERS", "1", "SOLVER.BASE_LR", "0.005",
    "TRAIN.SNAPSHOT_ITERS", "100", "RNG_SEED", "5",
]  # fmt: skip


@pytest.mark.slow
def test_81_class_pkl_fine_tunes_into_the_5_class_shapes_model(tmp_path):
    coco_cfg = config_tree(CONFIG, TINY + ["MODEL.NUM_CLASSES", "81"])
    blobs = random_blobs(build(coco_cfg), seed=3)
    pkl = write_detectron_pkl(tmp_path / "coco_model_final.pkl", blobs | imagenet_junk(blobs))
    data_dir = tmp_path / "data"
    write_shapes_dataset(data_dir / "shapes" / "shapes_train", 4, seed=0, min_side=64, max_side=112)
    out_dir = tmp_path / "run"
    command = [
        sys.executable, str(REPO / "tools" / "train_net_step.py"), "--dataset", "shapes",
        "--cfg", str(REPO / "configs" / CONFIG), "--no_cuda", "--bs", "2", "--nw", "0", "--disp_interval", "1",
        "--output_dir", str(out_dir), "--load_detectron", str(pkl), "--set", "DATA_DIR", str(data_dir), *TINY,
    ]  # fmt: skip
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    log = process.stdout + process.stderr
    assert process.returncode == 0, log[-4000:]

    assert "skipped 4 tensors whose shapes differ" in log
    for shapes in ("file (81, 32) vs model (5, 32)", "file (81,) vs model (5,)", "file (324, 32) vs model (20, 32)",
                   "file (324,) vs model (20,)"):  # fmt: skip
        assert shapes in log
    steps = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1, 2] and all(math.isfinite(s["loss"]) for s in steps)

    checkpoint = torch.load(out_dir / "ckpt" / "model_step2.pth", weights_only=True)
    assert yaml.safe_load(checkpoint["cfg"])["MODEL"]["NUM_CLASSES"] == 5
    fresh = build(config_tree(CONFIG, TINY + ["MODEL.NUM_CLASSES", "5"]))
    frozen = {name for name, p in fresh.named_parameters() if not p.requires_grad}
    frozen |= {name for name, _ in fresh.named_buffers() if name.endswith((".weight", ".bias"))}
    expected = expected_state(fresh, blobs)
    checked = 0
    for name in frozen & set(expected):
        assert torch.equal(checkpoint["model"][name], expected[name]), name
        checked += 1
    assert checked > 10  # the stem and res2 (FREEZE_AT 2) keep the file's values
