"""RetinaNet through the tools as they are: a short shapes training evaluated by tools/test_net.py
(box AP > 0, the AP pycocotools computes from the result file), infer_simple.py drawing its
detections, and train_net_step.py training and evaluating it."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "evaluation"))
sys.path.insert(0, str(REPO / "tests" / "tools"))
from evaluation_fixtures import one_torch_thread, save_checkpoint, short_train  # noqa: E402
from test_test_net_masks_keypoints import pycocotools_ap  # noqa: E402

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list  # noqa: E402
from pydetectron.data.shapes import ensure_shapes_dataset, write_shapes_dataset  # noqa: E402

SHAPES_CONFIG = REPO / "configs" / "shapes" / "retinanet_R-50-FPN_shapes.yaml"
# A thin R-50-FPN with GroupNorm on 128 px images: a CPU train step takes about a second.
TINY = [
    "RESNETS.NORM", "",
    "RESNETS.TRANS_FUNC", "bottleneck_gn_transformation",
    "RESNETS.STEM_FUNC", "basic_gn_stem",
    "RESNETS.SHORTCUT_FUNC", "basic_gn_shortcut",
    "RESNETS.WIDTH_PER_GROUP", "8",
    "GROUP_NORM.NUM_GROUPS", "8",
    "FPN.DIM", "64",
    "RETINANET.NUM_CONVS", "2",
    "TRAIN.SCALES", "(128,)",
    "TRAIN.MAX_SIZE", "192",
    "TEST.SCALE", "128",
    "TEST.MAX_SIZE", "192",
    "DATA_LOADER.NUM_THREADS", "0",
]  # fmt: skip


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_retinanet_cfg(data_dir: Path):
    cfg = get_cfg()
    merge_cfg_from_file(SHAPES_CONFIG, target=cfg)
    merge_cfg_from_list(TINY + ["DATA_DIR", str(data_dir)], target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    with one_torch_thread():
        cfg = tiny_retinanet_cfg(data_dir)
        model = short_train(cfg, steps=120, lr=0.01)
    ckpt = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "retinanet.pth", model, cfg)
    ensure_shapes_dataset(data_dir / "shapes", split="val")
    return data_dir, ckpt


@pytest.mark.slow
def test_short_training_gives_positive_box_ap_through_test_net(trained, tmp_path):
    data_dir, ckpt = trained
    argv = ["--dataset", "shapes", "--load_ckpt", str(ckpt), "--output_dir", str(tmp_path), "--no_cuda",
            "--nw", "0", "--data_dir", str(data_dir)]  # fmt: skip
    with one_torch_thread():
        assert load_tool("test_net").main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())["shapes_val"]
    assert set(metrics) == {"bbox"}
    assert metrics["bbox"]["AP"] > 0.0
    json_file = data_dir / "shapes" / "shapes_val" / "annotations.json"
    result_file = tmp_path / "bbox_shapes_val_results.json"
    assert metrics["bbox"]["AP"] == pytest.approx(pycocotools_ap(json_file, result_file, "bbox"))


@pytest.mark.slow
def test_infer_simple_draws_retinanet_detections(trained, tmp_path):
    data_dir, ckpt = trained
    image = sorted((data_dir / "shapes" / "shapes_val" / "images").glob("*.jpg"))[0]
    with one_torch_thread():
        argv = ["--load_ckpt", str(ckpt), "--images", str(image), "--output_dir", str(tmp_path), "--thresh", "0.05",
                "--output_ext", "jpg", "--no_cuda"]  # fmt: skip
        assert load_tool("infer_simple").main(argv) == 0
    (drawn,) = list(tmp_path.glob("*.jpg"))
    picture, original = cv2.imread(str(drawn)), cv2.imread(str(image))
    assert picture.shape == original.shape
    assert (cv2.absdiff(picture, original) > 40).any()  # boxes and labels were drawn


@pytest.mark.slow
def test_train_net_step_trains_and_evaluates_a_retinanet(tmp_path):
    data_dir = tmp_path / "data"
    write_shapes_dataset(data_dir / "shapes" / "shapes_train", 8, seed=0, min_side=96, max_side=128)
    write_shapes_dataset(data_dir / "shapes" / "shapes_val", 2, seed=1, min_side=96, max_side=128)
    command = [
        sys.executable, str(REPO / "tools" / "train_net_step.py"), "--dataset", "shapes", "--cfg", str(SHAPES_CONFIG),
        "--no_cuda", "--bs", "2", "--nw", "0", "--disp_interval", "1", "--output_dir", str(tmp_path / "run"),
        "--eval_period", "3", "--set", "DATA_DIR", str(data_dir), *TINY, "TRAIN.SCALES", "(96,)",
        "SOLVER.MAX_ITER", "6", "SOLVER.STEPS", "[0, 4]", "SOLVER.WARM_UP_ITERS", "2", "TRAIN.SNAPSHOT_ITERS", "3",
    ]  # fmt: skip
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [entry for entry in logged if "loss_retnet_cls" in entry]
    assert [entry["step"] for entry in losses] == list(range(6))
    assert {"loss_retnet_bbox", "retnet_fg_num"} <= set(losses[-1])
    evaluations = {entry["step"]: entry for entry in logged if "bbox/AP" in entry}
    assert sorted(evaluations) == [2, 5]
    json_file = data_dir / "shapes" / "shapes_val" / "annotations.json"
    results_file = tmp_path / "run" / "eval" / "shapes_val" / "bbox_shapes_val_results.json"
    assert evaluations[5]["bbox/AP"] == pytest.approx(pycocotools_ap(json_file, results_file, "bbox"))
    assert (tmp_path / "run" / "ckpt" / "model_step5.pth").is_file()
    assert (tmp_path / "run" / "ckpt" / "model_best.pth").is_file()

def test_settings_a_retinanet_cannot_honour_end_the_tools_with_one_line(tmp_path, capsys):
    tool = load_tool("train_net_step")
    argv = ["--dataset", "shapes", "--cfg", str(SHAPES_CONFIG), "--no_cuda", "--nw", "0", "--output_dir",
            str(tmp_path), "--set", "TEST.BBOX_AUG.ENABLED", "True"]  # fmt: skip
    assert tool.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("train_net_step.py: error: ")
    assert "TEST.BBOX_AUG.ENABLED: box test-time augmentation is not supported for RetinaNet" in line
