"""Which weights a training run starts from, and that whatever is named must load."""

import importlib.util
import logging
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import REPO, config_tree, write_py2_pickle  # noqa: E402

from pydetectron.weights import (  # noqa: E402
    WeightsDownloadError,
    WeightsError,
    WeightsNotFoundError,
    WeightsSource,
    initial_weights,
    load_initial_weights,
)

BASELINE = "baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml"
R50_URL = "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def detectron_weight_mapping(self):
        return {"fc.weight": "fc_w", "fc.bias": "fc_b"}, []


def tiny_pkl(path: Path) -> Path:
    return write_py2_pickle(path, {"fc_w": np.ones((2, 3), np.float32), "fc_b": np.zeros(2, np.float32)})


def test_the_order_of_flags_and_keys(tmp_path, caplog):
    cfg = config_tree(BASELINE)
    assert initial_weights(cfg) == [WeightsSource("TRAIN.WEIGHTS", R50_URL)]
    assert initial_weights(cfg, load_ckpt="a.pth") == [WeightsSource("--load_ckpt", "a.pth")]
    assert initial_weights(cfg, load_detectron="b.pkl") == [WeightsSource("--load_detectron", "b.pkl")]
    with pytest.raises(WeightsError, match="not both"):
        initial_weights(cfg, load_ckpt="a.pth", load_detectron="b.pkl")
    imagenet = config_tree(BASELINE, ["MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS", "True",
                                      "RESNETS.IMAGENET_PRETRAINED_WEIGHTS", "data/pretrained/R-50.pkl"])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="pydetectron.weights"):
        sources = initial_weights(imagenet)
    assert sources == [WeightsSource("RESNETS.IMAGENET_PRETRAINED_WEIGHTS", str(REPO / "data/pretrained/R-50.pkl"))]
    assert f"TRAIN.WEIGHTS {R50_URL} is not loaded" in caplog.text
    assert initial_weights(config_tree(BASELINE, ["TRAIN.WEIGHTS", ""])) == []


def test_a_named_file_that_is_missing_is_an_error_not_training_from_scratch(tmp_path):
    cfg = config_tree(BASELINE, ["TRAIN.WEIGHTS", str(tmp_path / "missing.pkl")])
    with pytest.raises(WeightsNotFoundError, match=r"^TRAIN.WEIGHTS: weights file not found: .*missing.pkl$"):
        load_initial_weights(Tiny(), cfg)


def test_a_url_that_cannot_be_fetched_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PYDETECTRON_CACHE", str(tmp_path / "cache"))
    cfg = config_tree(BASELINE, ["TRAIN.WEIGHTS", "file:///nonexistent/zoo/R-50.pkl"])
    with pytest.raises(WeightsDownloadError, match="could not download file:///nonexistent/zoo/R-50.pkl"):
        load_initial_weights(Tiny(), cfg)


def test_configured_weights_load(tmp_path):
    path = tiny_pkl(tmp_path / "w.pkl")
    model = Tiny()
    reports = load_initial_weights(model, config_tree(BASELINE, ["TRAIN.WEIGHTS", str(path)]))
    assert [r.source for r in reports] == [str(path)]
    assert torch.equal(model.fc.weight, torch.ones(2, 3))
    assert load_initial_weights(Tiny(), config_tree(BASELINE, ["TRAIN.WEIGHTS", ""])) == []


def load_train_tool():
    spec = importlib.util.spec_from_file_location("train_net_step_tool", REPO / "tools" / "train_net_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_net_step_stops_with_one_line_when_named_weights_are_missing(tmp_path, monkeypatch):
    tool = load_train_tool()
    cfg = config_tree(BASELINE, ["TRAIN.WEIGHTS", str(tmp_path / "missing.pkl")])
    args = Namespace(load_ckpt=None, load_detectron=None)
    with pytest.raises(tool.UsageError, match=r"^TRAIN.WEIGHTS: weights file not found: "):
        tool.initialise_weights(Tiny(), args, cfg, resuming=False)
    args = Namespace(load_ckpt=None, load_detectron=str(tmp_path / "gone.pkl"))
    with pytest.raises(tool.UsageError, match=r"^--load_detectron: weights file not found: "):
        tool.initialise_weights(Tiny(), args, cfg, resuming=False)
    model = Tiny()
    detectron_args = Namespace(load_ckpt=None, load_detectron=str(tiny_pkl(tmp_path / "t.pkl")))
    tool.initialise_weights(model, detectron_args, cfg, False)
    assert torch.equal(model.fc.weight, torch.ones(2, 3))
