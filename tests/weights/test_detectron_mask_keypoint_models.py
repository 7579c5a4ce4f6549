"""Detectron `.pkl` files of Mask and Keypoint R-CNN: every blob lands in the right tensor.

Built like test_detectron_models.py: the file holds the model's declared blobs (random) plus
the junk real files carry; a few hand-written Detectron names are checked against the layer
that must hold them, found by what the layer does in a forward pass.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import (  # noqa: E402
    build,
    config_tree,
    declared_blobs,
    expected_state,
    imagenet_junk,
    random_blobs,
    write_detectron_pkl,
)
from test_detectron_models import SMALL_TEST, check_hand_written, conv, linear  # noqa: E402

from pydetectron import Predictor  # noqa: E402
from pydetectron.weights import load_weights  # noqa: E402

DETECT_ALL = SMALL_TEST + ["TEST.SCORE_THRESH", "0.0"]


def load_everything(model, path, blobs, junk):
    report = load_weights(model, path)
    assert report.missing == [] and report.unused == [] and report.skipped == {}
    assert report.ignored == sorted(junk)
    state = model.state_dict()
    for name, value in expected_state(model, blobs).items():
        assert torch.equal(state[name], value), name
    assert {name for name, _ in model.named_parameters()} <= set(report.loaded)


def once_in_order(index, predicate):
    """The `index`-th recorded layer (in first-call order) that runs once and matches `predicate`."""
    return lambda r: [m for m in r.order if r.calls[m] == 1 and predicate(m)][index]


def test_r50_fpn_mask_rcnn(tmp_path):
    cfg = config_tree("baselines/e2e_mask_rcnn_R-50-FPN_1x.yaml", DETECT_ALL)
    blobs = random_blobs(build(cfg, seed=1), seed=1)
    assert "_[mask]_fcn1_w" in blobs and blobs["conv5_mask_w"].shape == (256, 256, 2, 2)
    assert blobs["mask_fcn_logits_w"].shape == (81, 256, 1, 1)
    junk = imagenet_junk(blobs)
    path = write_detectron_pkl(tmp_path / "mask.pkl", blobs | junk)
    model = build(cfg, seed=2)
    load_everything(model, path, blobs, junk)
    assert torch.equal(
        model.roi_heads.branches["mask"].head.upsample.conv5_mask.weight, torch.from_numpy(blobs["conv5_mask_w"])
    )
    # the mask convs are the last four 256 -> 256 3x3 convs to run once (after FPN's output convs)
    check_hand_written(model, blobs, {
        "_[mask]_fcn1_w": once_in_order(-4, lambda m: conv(m, 256, 256, 3)),
        "_[mask]_fcn4_w": once_in_order(-1, lambda m: conv(m, 256, 256, 3)),
        "mask_fcn_logits_w": lambda r: r.unique(lambda m, n: conv(m, 256, 81, 1)),
        "fc6_w": lambda r: r.unique(lambda m, n: linear(m, 256 * 7 * 7, 1024)),
        "conv_rpn_fpn2_w": lambda r: r.unique(lambda m, n: conv(m, 256, 256, 3) and n == 5),
    })  # fmt: skip
    # inference straight from the .pkl, as a user calls it
    predictor = Predictor(cfg, str(path), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (71, 103, 3), dtype=np.uint8)
    prediction = predictor(image)
    assert len(prediction) > 0 and prediction.masks.shape == (len(prediction), 71, 103)


def test_r50_c4_mask_rcnn_shares_res5_with_the_box_head(tmp_path):
    cfg = config_tree("baselines/e2e_mask_rcnn_R-50-C4_1x.yaml", DETECT_ALL)
    model = build(cfg, seed=1)
    names = declared_blobs(model)
    assert not any(blob.startswith("_[mask]_res5") for blob in names.values())  # one res5, the box head's
    blobs = random_blobs(model, seed=1)
    assert blobs["conv5_mask_w"].shape == (2048, 256, 2, 2)
    path = write_detectron_pkl(tmp_path / "c4.pkl", blobs)
    model = build(cfg, seed=2)
    load_everything(model, path, blobs, [])
    mask_res5 = model.roi_heads.branches["mask"].head.stage
    assert mask_res5 is model.roi_heads.box.head.res5


def test_r50_fpn_keypoint_rcnn(tmp_path):
    cfg = config_tree("baselines/e2e_keypoint_rcnn_R-50-FPN_1x.yaml", DETECT_ALL)
    blobs = random_blobs(build(cfg, seed=3), seed=3)
    assert blobs["kps_score_lowres_w"].shape == (512, 17, 4, 4)
    assert blobs["conv_fcn8_w"].shape == (512, 512, 3, 3)
    junk = imagenet_junk(blobs) | {"kps_score_w": np.zeros((17, 17, 4, 4), np.float32)}  # Detectron's fixed upsampler
    path = write_detectron_pkl(tmp_path / "keypoints.pkl", blobs | junk)
    model = build(cfg, seed=4)
    load_everything(model, path, blobs, junk)
    assert torch.equal(
        model.roi_heads.branches["keypoint"].outputs.score.weight, torch.from_numpy(blobs["kps_score_lowres_w"])
    )
    check_hand_written(model, blobs, {
        "conv_fcn1_w": lambda r: r.unique(lambda m, n: conv(m, 256, 512, 3)),
        "conv_fcn8_w": once_in_order(-1, lambda m: conv(m, 512, 512, 3)),  # after res5's 3x3 convs
        "cls_score_w": lambda r: r.unique(lambda m, n: linear(m, 1024, 2)),
    })  # fmt: skip
    predictor = Predictor(cfg, str(path), device="cpu")
    image = np.random.default_rng(1).integers(0, 256, (59, 83, 3), dtype=np.uint8)
    prediction = predictor(image)
    assert len(prediction) > 0 and prediction.keypoints.shape == (len(prediction), 17, 3)


def test_mask_prefixed_blobs_load_from_unprefixed_ones(tmp_path):
    """A v0up mask head's own res5 (`_[mask]_res5*`) starts from the file's `res5*` (Detectron's rule)."""
    v0up = ["MRCNN.ROI_MASK_HEAD", "mask_rcnn_heads.mask_rcnn_fcn_head_v0up"]
    cfg = config_tree("baselines/e2e_mask_rcnn_R-50-C4_1x.yaml", SMALL_TEST + v0up)
    model = build(cfg, seed=5)
    names = declared_blobs(model)
    assert "_[mask]_res5_0_branch2a_w" in names.values()
    blobs = {k: v for k, v in random_blobs(model, seed=5).items() if not k.startswith("_[mask]_")}
    path = write_detectron_pkl(tmp_path / "v0up.pkl", blobs)
    report = load_weights(model, path)
    assert report.missing == [] and report.unused == []
    mask_res5 = model.roi_heads.branches["mask"].head.res5
    assert torch.equal(mask_res5[0].conv1.weight, torch.from_numpy(blobs["res5_0_branch2a_w"]))
    assert isinstance(mask_res5[0].conv1, nn.Conv2d)
