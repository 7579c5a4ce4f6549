"""Inference straight from a Detectron `.pkl`: `pydetectron.Predictor`, tools/infer_simple.py and
tools/test_net.py (as subprocesses, on a tiny generated shapes dataset)."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import REPO, build, config_tree, expected_state, random_blobs, write_detectron_pkl  # noqa: E402

import pydetectron  # noqa: E402
from pydetectron.data import ensure_shapes_dataset  # noqa: E402

CONFIG = "baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml"
SMALL = [
    "MODEL.NUM_CLASSES", "5", "RESNETS.WIDTH_PER_GROUP", "8", "FPN.DIM", "16", "FAST_RCNN.MLP_HEAD_DIM", "32",
    "TEST.SCALE", "96", "TEST.MAX_SIZE", "128", "TEST.RPN_PRE_NMS_TOP_N", "100", "TEST.RPN_POST_NMS_TOP_N", "20",
    "TEST.SCORE_THRESH", "0.0", "TEST.DETECTIONS_PER_IM", "10", "TRAIN.WEIGHTS", "",
]  # fmt: skip


@pytest.fixture(scope="module")
def pkl(tmp_path_factory):
    cfg = config_tree(CONFIG, SMALL)
    blobs = random_blobs(build(cfg), seed=11)
    return cfg, blobs, write_detectron_pkl(tmp_path_factory.mktemp("zoo") / "model_final.pkl", blobs)


def test_predictor_runs_from_the_pkl_as_from_the_same_state_dict(pkl):
    cfg, blobs, path = pkl
    image = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)  # odd size
    from_pkl = pydetectron.Predictor(cfg, str(path), device="cpu")
    assert from_pkl.load_report.source_format == "Detectron .pkl" and from_pkl.load_report.missing == []
    reference = pydetectron.Predictor(cfg, dict(expected_state(from_pkl.model, blobs)), device="cpu")
    got, expected = from_pkl(image), reference(image)
    assert len(got) == 10 and got.image_size == (97, 131)
    assert np.array_equal(got.boxes, expected.boxes) and np.array_equal(got.scores, expected.scores)
    assert np.array_equal(got.classes, expected.classes)
    assert (got.boxes[:, [0, 2]] <= 131).all() and (got.boxes[:, [1, 3]] <= 97).all() and (got.boxes >= 0).all()


def run(*argv, cwd=REPO):
    process = subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process.stdout + process.stderr


@pytest.mark.slow
def test_infer_simple_takes_the_pkl(pkl, tmp_path):
    _, _, path = pkl
    image = tmp_path / "odd.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (75, 101, 3), dtype=np.uint8))
    out = run(REPO / "tools/infer_simple.py", "--cfg", REPO / "configs" / CONFIG, "--load_detectron", path,
              "--images", image, "--output_dir", tmp_path / "out", "--no_cuda", "--thresh", "0.0",
              "--set", *SMALL)  # fmt: skip
    assert re.search(rf"Loaded (\d+) of \1 model tensors from {re.escape(str(path))} \(Detectron .pkl\)", out)
    assert (tmp_path / "out" / "odd.png").is_file()


@pytest.mark.slow
def test_test_net_takes_the_pkl(pkl, tmp_path):
    _, _, path = pkl
    data_dir = tmp_path / "data"
    ensure_shapes_dataset(data_dir / "shapes", split="val", num_images=3)
    out = run(REPO / "tools/test_net.py", "--dataset", "shapes", "--cfg", REPO / "configs" / CONFIG,
              "--load_detectron", path, "--data_dir", data_dir, "--output_dir", tmp_path / "test", "--no_cuda",
              "--nw", "0", "--set", *SMALL)  # fmt: skip
    assert re.search(rf"Loaded (\d+) of \1 model tensors from {re.escape(str(path))} \(Detectron .pkl\)", out)
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert set(metrics["shapes_val"]["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}


def test_test_net_resolves_a_test_weights_url_to_the_cache(pkl, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("test_net_tool", REPO / "tools" / "test_net.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    _, _, path = pkl
    monkeypatch.setenv("PYDETECTRON_CACHE", str(tmp_path / "cache"))
    cfg = config_tree(CONFIG, SMALL + ["TEST.WEIGHTS", path.as_uri()])
    local = tool.weights_path(SimpleNamespace(load_ckpt=None, load_detectron=None), cfg)
    assert Path(local).read_bytes() == path.read_bytes()
    assert Path(local).is_relative_to(tmp_path / "cache")
