"""tools/convert_weights.py: Detectron .pkl -> our checkpoint -> Detectron .pkl, values unchanged."""

import importlib.util
import pickle
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import (  # noqa: E402
    CFG_TEXT,
    REPO,
    build,
    config_tree,
    expected_state,
    imagenet_junk,
    random_blobs,
    write_detectron_pkl,
)

from pydetectron.weights import load_weights  # noqa: E402

CONFIG = "baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml"
NARROW = ["RESNETS.WIDTH_PER_GROUP", "8", "FPN.DIM", "16", "FAST_RCNN.MLP_HEAD_DIM", "32"]


def load_tool():
    spec = importlib.util.spec_from_file_location("convert_weights_tool", REPO / "tools" / "convert_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def detectron_file(tmp_path_factory):
    cfg = config_tree(CONFIG, NARROW)
    model = build(cfg, seed=1)
    blobs = random_blobs(model, seed=1)
    path = write_detectron_pkl(tmp_path_factory.mktemp("zoo") / "model_final.pkl", blobs | imagenet_junk(blobs))
    return cfg, blobs, path


def test_round_trip(detectron_file, tmp_path):
    cfg, blobs, source = detectron_file
    tool = load_tool()
    converted = tmp_path / "model.pth"
    argv = ["to_pth", str(source), str(converted), "--cfg", str(REPO / "configs" / CONFIG), "--set", *NARROW]
    assert tool.main(argv) == 0
    checkpoint = torch.load(converted, weights_only=True)
    assert checkpoint["detectron_cfg"] == CFG_TEXT and checkpoint["source"] == str(source)
    model = build(cfg, seed=9)
    report = load_weights(model, converted)
    assert report.source_format == "pydetectron checkpoint" and report.missing == [] and report.unused == []
    for name, value in expected_state(model, blobs).items():
        assert torch.equal(model.state_dict()[name], value), name

    back = tmp_path / "back.pkl"
    assert tool.main(["to_pkl", str(converted), str(back)]) == 0  # the config comes from the checkpoint
    data = pickle.loads(back.read_bytes(), encoding="latin1")  # the standard unpickler reads it
    assert set(data["blobs"]) == set(blobs)  # the model's blobs, without the junk
    for name, value in blobs.items():
        assert (data["blobs"][name] == value).all(), name
    assert "NUM_CLASSES: 81" in data["cfg"]


def test_partial_conversions_are_refused_unless_allowed(detectron_file, tmp_path):
    _, _, source = detectron_file
    tool = load_tool()
    argv = ["to_pth", str(source), str(tmp_path / "five.pth"), "--cfg", str(REPO / "configs" / CONFIG),
            "--set", *NARROW, "MODEL.NUM_CLASSES", "5"]  # fmt: skip
    with pytest.raises(SystemExit, match="refusing a partial conversion: .* have another shape"):
        tool.main(argv)
    assert not (tmp_path / "five.pth").exists()
    assert tool.main(argv + ["--allow_partial"]) == 0
    assert (tmp_path / "five.pth").is_file()


def test_to_pkl_needs_a_config(tmp_path):
    tool = load_tool()
    bare = tmp_path / "bare.pth"
    torch.save({"model": {}}, bare)
    with pytest.raises(SystemExit, match="carries no config: give --cfg"):
        tool.main(["to_pkl", str(bare), str(tmp_path / "out.pkl")])
