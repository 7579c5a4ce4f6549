"""Detectron end-to-end `.pkl` files: every blob lands in the right tensor, every tensor comes from the file.

Files are Python-2-style pickles built from the model's own blob names (random arrays plus
the junk real files carry). Independently of those names, a few hand-written Detectron
blobs are checked against the layer that must hold them, found by what it does in a
forward pass (first conv on the image, the linear with 81 outputs, the conv run on every
FPN level, ...), and real Detectron shapes are checked on a full-size X-101-64x4d-FPN.
"""

import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import (  # noqa: E402
    CFG_TEXT,
    CallRecorder,
    build,
    config_tree,
    declared_blobs,
    expected_state,
    imagenet_junk,
    random_blobs,
    write_detectron_pkl,
)

from pydetectron.weights import detectron_names, load_weights  # noqa: E402

SMALL_TEST = ["TEST.SCALE", "64", "TEST.MAX_SIZE", "96", "TEST.RPN_PRE_NMS_TOP_N", "50",
              "TEST.RPN_POST_NMS_TOP_N", "8"]  # fmt: skip
# X-101-64x4d-FPN with the real blob names; narrower bottlenecks, FPN and head keep it fast.
X101_NARROW = ["RESNETS.WIDTH_PER_GROUP", "1", "FPN.DIM", "32", "FAST_RCNN.MLP_HEAD_DIM", "64"]


def conv(m, in_channels, out_channels, kernel):
    return isinstance(m, nn.Conv2d) and (m.in_channels, m.out_channels, m.kernel_size[0]) == (
        in_channels, out_channels, kernel)  # fmt: skip


def linear(m, in_features=None, out_features=None):
    return isinstance(m, nn.Linear) and (in_features in (None, m.in_features)) and (
        out_features in (None, m.out_features))  # fmt: skip


def record_layers(model):
    recorder = CallRecorder(model)
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 96) * 50, torch.tensor([[64.0, 96.0, 1.0]]))
    recorder.close()
    return recorder


def check_hand_written(model, blobs, layers):
    """Each (blob, finder) pair: the layer the finder picks holds that blob's array."""
    recorder = record_layers(model)
    for blob, find in layers.items():
        layer = find(recorder)
        assert torch.equal(layer.weight, torch.from_numpy(blobs[blob])), blob


def load_and_check_everything(model, path, blobs, junk):
    report = load_weights(model, path)
    assert report.source_format == "Detectron .pkl" and report.source == str(path)
    assert report.missing == [] and report.unused == [] and report.skipped == {} and report.derived == []
    assert report.ignored == sorted(junk)
    assert report.cfg_text == CFG_TEXT
    state = model.state_dict()
    expected = expected_state(model, blobs)
    assert set(report.loaded) == set(expected) == set(state)
    for name, value in expected.items():
        assert torch.equal(state[name], value), name
    assert {name for name, _ in model.named_parameters()} <= set(report.loaded)
    return report


def test_r50_c4_faster_rcnn(tmp_path, caplog):
    cfg = config_tree("baselines/e2e_faster_rcnn_R-50-C4_1x.yaml", SMALL_TEST)
    source = build(cfg, seed=1)
    blobs = random_blobs(source, seed=1)
    junk = imagenet_junk(blobs)
    path = write_detectron_pkl(tmp_path / "model_final.pkl", blobs | junk)
    model = build(cfg, seed=2)
    with caplog.at_level(logging.INFO, logger="pydetectron.weights"):
        load_and_check_everything(model, path, blobs, junk)
    assert f"Loaded 169 of 169 model tensors from {path} (Detectron .pkl)" in caplog.text
    check_hand_written(model, blobs, {
        "conv1_w": lambda r: r.order[0],
        "res2_0_branch2a_w": lambda r: r.order[1],
        "conv_rpn_w": lambda r: r.unique(lambda m, n: conv(m, 1024, 1024, 3)),
        "rpn_cls_logits_w": lambda r: r.unique(lambda m, n: conv(m, 1024, 15, 1)),
        "rpn_bbox_pred_w": lambda r: r.unique(lambda m, n: conv(m, 1024, 60, 1)),
        "res5_0_branch2a_w": lambda r: r.unique(lambda m, n: conv(m, 1024, 512, 1)),
        "cls_score_w": lambda r: r.unique(lambda m, n: linear(m, 2048, 81)),
        "bbox_pred_w": lambda r: r.unique(lambda m, n: linear(m, 2048, 324)),
    })  # fmt: skip
    assert blobs["conv1_w"].shape == (64, 3, 7, 7) and blobs["res4_5_branch2c_w"].shape == (1024, 256, 1, 1)


def test_x101_64x4d_fpn_faster_rcnn_bare_blob_dict(tmp_path):
    cfg = config_tree("baselines/e2e_faster_rcnn_X-101-64x4d-FPN_1x.yaml", SMALL_TEST + X101_NARROW)
    source = build(cfg, seed=3)
    blobs = random_blobs(source, seed=3)
    junk = imagenet_junk(blobs)
    path = write_detectron_pkl(tmp_path / "x101.pkl", blobs | junk, cfg_text=None)  # the old bare format
    model = build(cfg, seed=4)
    report = load_weights(model, path)
    assert report.cfg_text is None
    assert report.missing == [] and report.unused == [] and report.skipped == {}
    assert report.ignored == sorted(junk)
    for name, value in expected_state(model, blobs).items():
        assert torch.equal(model.state_dict()[name], value), name
    assert {name for name, _ in model.named_parameters()} <= set(report.loaded)
    check_hand_written(model, blobs, {
        "conv1_w": lambda r: r.order[0],
        "res2_0_branch2a_w": lambda r: r.order[1],
        "fpn_inner_res5_2_sum_w": lambda r: r.unique(lambda m, n: conv(m, 2048, 32, 1)),
        "fpn_inner_res4_22_sum_lateral_w": lambda r: r.unique(lambda m, n: conv(m, 1024, 32, 1)),
        "fpn_inner_res2_2_sum_lateral_w": lambda r: r.unique(lambda m, n: conv(m, 256, 32, 1)),
        "conv_rpn_fpn2_w": lambda r: r.unique(lambda m, n: conv(m, 32, 32, 3) and n == 5),
        "rpn_cls_logits_fpn2_w": lambda r: r.unique(lambda m, n: conv(m, 32, 3, 1) and n == 5),
        "rpn_bbox_pred_fpn2_w": lambda r: r.unique(lambda m, n: conv(m, 32, 12, 1) and n == 5),
        "fc6_w": lambda r: r.unique(lambda m, n: linear(m, 32 * 7 * 7, 64)),
        "fc7_w": lambda r: r.unique(lambda m, n: linear(m, 64, 64)),
        "cls_score_w": lambda r: r.unique(lambda m, n: linear(m, 64, 81)),
        "bbox_pred_w": lambda r: r.unique(lambda m, n: linear(m, 64, 324)),
    })  # fmt: skip


# Blob shapes of Detectron's X-101-64x4d-FPN Faster R-CNN (model zoo, 12_2017 baselines).
X101_DETECTRON_SHAPES = {
    "conv1_w": (64, 3, 7, 7),
    "res_conv1_bn_s": (64,),
    "res2_0_branch2a_w": (256, 64, 1, 1),
    "res2_0_branch2b_w": (256, 4, 3, 3),
    "res2_0_branch2c_w": (256, 256, 1, 1),
    "res2_0_branch1_w": (256, 64, 1, 1),
    "res2_0_branch1_bn_b": (256,),
    "res3_0_branch2b_w": (512, 8, 3, 3),
    "res4_22_branch2c_w": (1024, 1024, 1, 1),
    "res5_2_branch2b_w": (2048, 32, 3, 3),
    "res5_2_branch2c_bn_s": (2048,),
    "fpn_inner_res5_2_sum_w": (256, 2048, 1, 1),
    "fpn_inner_res4_22_sum_lateral_w": (256, 1024, 1, 1),
    "fpn_inner_res2_2_sum_lateral_b": (256,),
    "fpn_res5_2_sum_w": (256, 256, 3, 3),
    "fpn_res2_2_sum_b": (256,),
    "conv_rpn_fpn2_w": (256, 256, 3, 3),
    "rpn_cls_logits_fpn2_w": (3, 256, 1, 1),
    "rpn_bbox_pred_fpn2_w": (12, 256, 1, 1),
    "fc6_w": (1024, 12544),
    "fc7_w": (1024, 1024),
    "cls_score_w": (81, 1024),
    "bbox_pred_w": (324, 1024),
}


def test_x101_64x4d_fpn_full_size_has_detectron_names_and_shapes():
    model = build(config_tree("baselines/e2e_faster_rcnn_X-101-64x4d-FPN_1x.yaml"))
    names = detectron_names(model)
    state = model.state_dict()
    shapes = {blob: tuple(state[ours].shape) for ours, blob in names.blobs.items()}
    for blob, shape in X101_DETECTRON_SHAPES.items():
        assert shapes.get(blob) == shape, blob
    # 3 + 4 + 23 + 3 blocks of 3 convs with 3 blobs each, 4 shortcuts of 3, the stem's 3; FPN 4 x 2 convs
    # with weights and biases; RPN 6; fc6, fc7, cls_score, bbox_pred 8
    assert len(shapes) == 33 * 9 + 4 * 3 + 3 + 16 + 6 + 8
    assert {"fc1000_w", "fc1000_b", "conv1_b", "res4_22_branch2c_b"} <= set(names.orphans)


def test_a_blob_that_only_sits_in_the_file_is_reported_unused(tmp_path):
    cfg = config_tree("baselines/e2e_faster_rcnn_X-101-64x4d-FPN_1x.yaml", SMALL_TEST + X101_NARROW)
    model = build(cfg)
    blobs = random_blobs(model, extra={"mystery_w": np.ones((2, 2), np.float32)}, skip=["fc7_w", "fc7_b"])
    report = load_weights(model, write_detectron_pkl(tmp_path / "partial.pkl", blobs))
    assert report.unused == ["mystery_w"]
    declared = declared_blobs(model)
    assert sorted(declared[name] for name in report.missing) == ["fc7_b", "fc7_w"]
