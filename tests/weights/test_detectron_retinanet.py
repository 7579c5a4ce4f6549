"""Detectron RetinaNet `.pkl` files: every `retnet_*` / `fpn_*` blob lands in the right tensor.

An 81-class Detectron-style file (Python 2 pickle, random arrays under the model's declared
names plus the junk real files carry) loads with nothing missing or unused; independently of
our names, Detectron's graph is recomputed from the blobs by name (the towers and predictors
shared by every level, fpn_6 on C5, fpn_7 on ReLU(P6)) and equals the model's outputs; and a
full-size model has Detectron's blob shapes.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import (  # noqa: E402
    build,
    config_tree,
    expected_state,
    imagenet_junk,
    random_blobs,
    write_detectron_pkl,
)

from pydetectron.weights import detectron_names, load_weights  # noqa: E402

CFG_TEXT = "MODEL:\n  TYPE: retinanet\n  NUM_CLASSES: 81\n  BBOX_REG_WEIGHTS: !!python/tuple [10.0, 10.0, 5.0, 5.0]\n"
NARROW = ["RESNETS.WIDTH_PER_GROUP", "4", "FPN.DIM", "32"]


def conv(x, blobs, name, stride=1):
    return F.conv2d(x, torch.from_numpy(blobs[name + "_w"]), torch.from_numpy(blobs[name + "_b"]), stride, 1)


def detectron_head(feature, blobs, branch, pred):
    for i in range(4):
        feature = torch.relu(conv(feature, blobs, f"retnet_{branch}_conv_n{i}_fpn3"))
    return conv(feature, blobs, pred)


def test_r50_fpn_retinanet_pkl(tmp_path):
    cfg = config_tree("baselines/retinanet_R-50-FPN_1x.yaml", NARROW)
    assert cfg.MODEL.NUM_CLASSES == 81
    blobs = random_blobs(build(cfg, seed=1), seed=1)
    junk = imagenet_junk(blobs)
    path = write_detectron_pkl(tmp_path / "retinanet.pkl", blobs | junk, cfg_text=CFG_TEXT)
    model = build(cfg, seed=2)
    report = load_weights(model, path, cfg)
    assert report.source_format == "Detectron .pkl" and report.cfg_text == CFG_TEXT and report.notes == []
    assert report.missing == [] and report.unused == [] and report.skipped == {} and report.derived == []
    assert report.ignored == sorted(junk)
    state = model.state_dict()
    expected = expected_state(model, blobs)
    assert set(report.loaded) == set(expected) == set(state)
    for name, value in expected.items():
        assert torch.equal(state[name], value), name
    head_blobs = {blob for blob in blobs if blob.startswith("retnet_")}
    assert len(head_blobs) == 2 * (4 * 2 + 2) and all(blob.endswith(("_fpn3_w", "_fpn3_b")) for blob in head_blobs)

    images = torch.rand(1, 3, 128, 128) * 100
    with torch.no_grad():
        c5 = model.body.backbone(images)["res5"]
        features = model.body(images)
        p6 = conv(c5, blobs, "fpn_6", stride=2)
        p7 = conv(torch.relu(p6), blobs, "fpn_7", stride=2)
        torch.testing.assert_close(features["p6"], p6)
        torch.testing.assert_close(features["p7"], p7)
        cls_logits, bbox_pred = model.head([features[name] for name in model.in_features])
        for level, name in enumerate(model.in_features):
            torch.testing.assert_close(
                cls_logits[level], detectron_head(features[name], blobs, "cls", "retnet_cls_pred_fpn3")
            )
            torch.testing.assert_close(
                bbox_pred[level], detectron_head(features[name], blobs, "bbox", "retnet_bbox_pred_fpn3")
            )
    assert cls_logits[0].shape[1] == 9 * 80 and bbox_pred[0].shape[1] == 9 * 4


def test_full_size_r50_retinanet_has_detectron_shapes():
    model = build(config_tree("baselines/retinanet_R-50-FPN_1x.yaml"))
    names = detectron_names(model)
    state = model.state_dict()
    shapes = {blob: tuple(state[ours].shape) for ours, blob in names.blobs.items()}
    expected = {
        "retnet_cls_conv_n0_fpn3_w": (256, 256, 3, 3),
        "retnet_cls_conv_n3_fpn3_b": (256,),
        "retnet_bbox_conv_n2_fpn3_w": (256, 256, 3, 3),
        "retnet_cls_pred_fpn3_w": (720, 256, 3, 3),
        "retnet_cls_pred_fpn3_b": (720,),
        "retnet_bbox_pred_fpn3_w": (36, 256, 3, 3),
        "fpn_inner_res5_2_sum_w": (256, 2048, 1, 1),
        "fpn_inner_res3_3_sum_lateral_w": (256, 512, 1, 1),
        "fpn_res3_3_sum_w": (256, 256, 3, 3),
        "fpn_6_w": (256, 2048, 3, 3),
        "fpn_7_w": (256, 256, 3, 3),
    }
    for blob, shape in expected.items():
        assert shapes.get(blob) == shape, blob
    assert not any(blob.startswith(("fpn_inner_res2", "fpn_res2", "conv_rpn", "cls_score")) for blob in shapes)
    # the prior: every class starts at probability 0.01
    bias = state[next(k for k, v in names.blobs.items() if v == "retnet_cls_pred_fpn3_b")]
    np.testing.assert_allclose(torch.sigmoid(bias).numpy(), 0.01, rtol=1e-5)
