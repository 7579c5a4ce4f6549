"""Configs of their own: two predictors in one process, Predictor.from_checkpoint, stored configs."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread, save_checkpoint, tiny_cfg  # noqa: E402

from pydetectron.config import cfg as global_cfg  # noqa: E402
from pydetectron.config import get_cfg  # noqa: E402
from pydetectron.engine.checkpoint import CheckpointError  # noqa: E402
from pydetectron.engine.predictor import Predictor  # noqa: E402
from pydetectron.engine.tool_config import MACHINE_KEYS, stored_cfg  # noqa: E402
from pydetectron.modeling.model_builder import build_model  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def checkpoint_of(path, extra, seed):
    cfg = tiny_cfg(extra=extra)
    torch.manual_seed(seed)
    return save_checkpoint(path, build_model(cfg), cfg), cfg


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    a = checkpoint_of(folder / "a.pth", ["TEST.SCALE", "128", "TEST.SCORE_THRESH", "0.0"], seed=0)
    b = checkpoint_of(folder / "b.pth", ["MODEL.NUM_CLASSES", "3", "TEST.SCALE", "96", "TEST.DETECTIONS_PER_IM",
                                         "5", "TEST.SCORE_THRESH", "0.0"], seed=1)  # fmt: skip
    return a, b


def same(p, q):
    return np.array_equal(p.boxes, q.boxes) and np.array_equal(p.scores, q.scores) and np.array_equal(
        p.classes, q.classes
    )


def test_two_predictors_with_their_own_configs_do_not_interfere(two_checkpoints):
    (path_a, cfg_a), (path_b, cfg_b) = two_checkpoints
    defaults = get_cfg().to_dict()
    image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    a = Predictor.from_checkpoint(path_a, device="cpu")
    b = Predictor.from_checkpoint(path_b, device="cpu")
    first_a, first_b, second_a = a(image), b(image), a(image)
    assert same(first_a, second_a)
    assert (a.cfg.TEST.SCALE, a.num_classes, b.cfg.TEST.SCALE, b.num_classes) == (128, 5, 96, 3)
    assert 0 < len(first_b) <= 5 and set(first_b.classes.tolist()) <= {1, 2}
    assert len(first_a) > 5
    # the same as predictors built alone from explicit config trees
    checkpoint_a = torch.load(path_a, weights_only=True)
    assert same(Predictor(cfg_a, checkpoint_a, device="cpu")(image), first_a)
    assert same(Predictor(cfg_b, torch.load(path_b, weights_only=True), device="cpu")(image), first_b)
    assert global_cfg.to_dict() == defaults  # the global cfg was never touched


def test_from_checkpoint_overrides_and_bad_checkpoints(two_checkpoints, tmp_path):
    (path_a, _), _ = two_checkpoints
    predictor = Predictor.from_checkpoint(path_a, device="cpu", **{"TEST.DETECTIONS_PER_IM": 3, "TEST.NMS": 0.5})
    assert predictor.cfg.TEST.DETECTIONS_PER_IM == 3 and predictor.cfg.TEST.NMS == 0.5
    assert len(predictor(np.zeros((90, 90, 3), np.uint8))) <= 3
    weights_only = tmp_path / "weights_only.pth"
    torch.save({"model": torch.load(path_a, weights_only=True)["model"]}, weights_only)
    with pytest.raises(CheckpointError, match=r"does not carry its config; .*weights_only\.pth was not written by"):
        Predictor.from_checkpoint(weights_only)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(Path(path_a).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"truncated\.pth: not a readable checkpoint"):
        Predictor.from_checkpoint(truncated)
    with pytest.raises(Exception, match="TEST.NMSS: no such key; did you mean TEST.NMS"):
        Predictor.from_checkpoint(path_a, **{"TEST.NMSS": 0.5})


def test_machine_keys_of_a_stored_config_are_not_taken(two_checkpoints):
    (path_a, _), _ = two_checkpoints
    checkpoint = torch.load(path_a, weights_only=True)
    tree = yaml.safe_load(checkpoint["cfg"])
    tree["DATA_DIR"], tree["OUTPUT_DIR"] = "/data/of/another/machine", "/elsewhere"
    checkpoint["cfg"] = yaml.safe_dump(tree)
    stored = stored_cfg(checkpoint)
    assert not set(MACHINE_KEYS) & set(stored) and stored["TEST"]["SCALE"] == 128
    predictor = Predictor.from_checkpoint(_saved(checkpoint, Path(path_a).with_name("moved.pth")), device="cpu")
    assert predictor.cfg.DATA_DIR == get_cfg().DATA_DIR


def _saved(checkpoint, path):
    torch.save(checkpoint, path)
    return path
