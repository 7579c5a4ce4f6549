"""Mask and keypoint branches: head shapes and names, Detectron's upsampler, loss reductions."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "evaluation"))
from evaluation_fixtures import tiny_cfg  # noqa: E402

from pydetectron.modeling import build_model  # noqa: E402
from pydetectron.modeling.roi_heads.box_sampling import SampledRoIs  # noqa: E402
from pydetectron.modeling.roi_heads.mask_branch import mask_targets  # noqa: E402
from pydetectron.modeling.roi_heads.upsample import BilinearUpsample  # noqa: E402
from pydetectron.structures.ground_truth import GroundTruth  # noqa: E402
from pydetectron.structures.polygon_masks import PolygonMasks  # noqa: E402

MASK = ["MODEL.MASK_ON", "True", "MRCNN.ROI_MASK_HEAD", "mask_rcnn_heads.mask_rcnn_fcn_head_v1up4convs",
        "MRCNN.DIM_REDUCED", "16", "MRCNN.RESOLUTION", "14", "MRCNN.ROI_XFORM_RESOLUTION", "7",
        "MRCNN.DILATION", "1"]  # fmt: skip


def features(model, size=(64, 96)):
    torch.manual_seed(1)
    with torch.no_grad():
        return model.body(torch.randn(2, 3, *size))


def square(x1, y1, x2, y2):
    return [np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float32)]


def test_bilinear_upsample_is_detectrons_kernel_and_bilinear_inside():
    up = BilinearUpsample(3, 2, "kps_score")
    line = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(up.kernel[0, 0], line[:, None] * line[None, :])
    assert up.blob_names() == ["kps_score_w", "kps_score_b"]
    x = torch.randn(2, 3, 6, 5)
    got = up(x)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert got.shape == expected.shape
    torch.testing.assert_close(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])  # borders: zero padding vs clamp
    with pytest.raises(ValueError, match="even"):
        BilinearUpsample(3, 3)


@pytest.mark.parametrize(
    "head,extra,convs",
    [
        ("mask_rcnn_fcn_head_v1up4convs", [], 4),
        ("mask_rcnn_fcn_head_v1up", [], 2),
        ("mask_rcnn_fcn_head_v1up4convs_gn", [], 4),
        ("mask_rcnn_fcn_head_v1up4convs", ["MRCNN.UPSAMPLE_RATIO", "2", "MRCNN.RESOLUTION", "28"], 4),
        ("mask_rcnn_fcn_head_v1up4convs", ["MRCNN.USE_FC_OUTPUT", "True", "MRCNN.CLS_SPECIFIC_MASK", "False"], 4),
    ],
)
def test_mask_heads_shapes_and_names(head, extra, convs):
    cfg = tiny_cfg(None, MASK + ["MRCNN.ROI_MASK_HEAD", f"mask_rcnn_heads.{head}", *extra])
    model = build_model(cfg).eval()
    branch = model.roi_heads.branches["mask"]
    rois = torch.tensor([[0, 4.0, 4, 40, 30], [1, 10, 8, 60, 50], [1, 0, 0, 90, 60]])
    logits = branch.mask_logits(features(model), rois)
    classes = 1 if "MRCNN.CLS_SPECIFIC_MASK" in extra else 5
    assert logits.shape == (3, classes, cfg.MRCNN.RESOLUTION, cfg.MRCNN.RESOLUTION)
    mapping, orphans = branch.detectron_weight_mapping()
    prefix = "_mask_fcn" if head.endswith("_gn") else "_[mask]_fcn"
    assert {f"{prefix}{i}_w" for i in range(1, convs + 1)} <= set(mapping.values())
    assert {"conv5_mask_w", "mask_fcn_logits_w", "mask_fcn_logits_b"} <= set(mapping.values())
    if head.endswith("_gn"):
        assert "_mask_fcn1_gn_s" in mapping.values() and "_mask_fcn1_b" not in mapping.values()
    if "MRCNN.UPSAMPLE_RATIO" in extra:
        assert orphans == ["mask_fcn_logits_up_w", "mask_fcn_logits_up_b"]
    assert set(mapping) == set(branch.state_dict())


def test_mask_loss_is_the_class_channel_bce_against_the_rasterised_targets():
    cfg = tiny_cfg(None, MASK)
    model = build_model(cfg).train()
    branch = model.roi_heads.branches["mask"]
    feats = features(model)
    targets = [
        GroundTruth(torch.tensor([[4.0, 4, 40, 30]]), torch.tensor([2]), masks=PolygonMasks.from_lists([square(4, 4, 30, 30)])),  # noqa: E501
        GroundTruth(torch.tensor([[10.0, 8, 60, 50], [0, 0, 20, 20]]), torch.tensor([1, 4]),
                    masks=PolygonMasks.from_lists([square(10, 8, 60, 50), square(0, 0, 20, 10)])),
    ]  # fmt: skip
    samples = SampledRoIs(
        rois=torch.tensor([[0, 2.0, 2, 36, 32], [1, 12, 10, 58, 52], [1, 0, 0, 40, 40], [1, 0, 0, 24, 16]]),
        labels=torch.tensor([2, 1, 0, 4]),
        bbox_targets=torch.zeros(4, 4),
        matched_gt_index=torch.tensor([0, 0, -1, 1]),
    )
    loss = branch.losses(feats, samples, targets)["loss_mask"]
    fg = torch.tensor([0, 1, 3])
    logits = branch.mask_logits(feats, samples.rois[fg])
    expected_targets = torch.cat([
        mask_targets(targets[0].masks, samples.rois[:1, 1:], torch.tensor([0]), 14),
        mask_targets(targets[1].masks, samples.rois[[1, 3], 1:], torch.tensor([0, 1]), 14),
    ])  # fmt: skip
    chosen = logits[torch.arange(3), torch.tensor([2, 1, 4])]
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(chosen, expected_targets))
    # the second object covers 10 / 16 of its RoI's height: cell rows 0..8 (centres below 8.75)
    assert expected_targets[0].sum() > 0 and expected_targets[2][:9, 0].all() and expected_targets[2][9:].sum() == 0


def test_bitmap_targets_crop_and_resize():
    bitmaps = torch.zeros((1, 40, 40), dtype=torch.uint8)
    bitmaps[0, 10:30, 20:40] = 1
    targets = mask_targets(bitmaps, torch.tensor([[20.0, 10, 40, 30], [0.0, 0, 40, 40]]), torch.tensor([0, 0]), 8)
    assert targets[0].sum() == 64  # the box is the object
    assert targets[1][2:6, 4:8].sum() == 16 and targets[1].sum() == 16


@pytest.mark.parametrize("by_visible", [True, False])
def test_keypoint_loss_normalisation(by_visible):
    options = ["MODEL.NUM_CLASSES", "2", "MODEL.KEYPOINTS_ON", "True", "KRCNN.NUM_KEYPOINTS", "3",
               "KRCNN.ROI_KEYPOINTS_HEAD", "keypoint_rcnn_heads.roi_pose_head_v1convX",
               "KRCNN.NUM_STACKED_CONVS", "1", "KRCNN.CONV_HEAD_DIM", "8", "KRCNN.UP_SCALE", "2",
               "KRCNN.HEATMAP_SIZE", "14", "KRCNN.ROI_XFORM_RESOLUTION", "7",
               "KRCNN.MIN_KEYPOINT_COUNT_FOR_VALID_MINIBATCH", "0", "TRAIN.FG_THRESH", "0.99",
               "KRCNN.NORMALIZE_BY_VISIBLE_KEYPOINTS", str(by_visible)]  # fmt: skip
    cfg = tiny_cfg(None, options)
    model = build_model(cfg).train()
    branch = model.roi_heads.branches["keypoint"]
    feats = features(model)
    boxes = torch.tensor([[10.0, 10, 50, 40]])
    keypoints = torch.tensor([[[20.0, 20, 2], [30, 35, 2], [45, 12, 0]]])
    targets = [GroundTruth(boxes, torch.tensor([1]), keypoints=keypoints)] * 2
    # only the gt box itself passes FG_THRESH 0.99: one RoI per image, 2 visible keypoints each
    none = torch.zeros(0, dtype=torch.long)
    candidates = [torch.cat([boxes, boxes + 30])] * 2
    samples = SampledRoIs(torch.zeros((0, 5)), none, torch.zeros(0, 4), none, candidates=candidates)
    torch.manual_seed(0)
    loss = branch.losses(feats, samples, targets)["loss_kps"]
    rois = torch.tensor([[0, 10.0, 10, 50, 40], [1, 10.0, 10, 50, 40]])
    logits = branch.heatmap_logits(feats, rois).view(2, 3, -1)
    # cells: x (20-10)*14/40 = 3.5 -> 3, y (20-10)*14/30 = 4.67 -> 4; x 7, y 11.67 -> 11
    cells = torch.tensor([4 * 14 + 3, 11 * 14 + 7])
    terms = torch.cat([F.cross_entropy(logits[i, :2], cells, reduction="none") for i in range(2)])
    expected = terms.sum() / (4 if by_visible else 2 * cfg.TRAIN.BATCH_SIZE_PER_IM * cfg.TRAIN.FG_FRACTION * 3)
    torch.testing.assert_close(loss, expected)
