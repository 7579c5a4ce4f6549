"""Bad arguments raise ValueError / TypeError naming the argument and the expected form."""

import pytest
import torch

import pydetectron.ops as ops
from pydetectron.ops._library import OPS

FEATURE = torch.zeros(2, 3, 8, 8)
ROIS = torch.tensor([[0, 1.0, 1.0, 5.0, 5.0]])
BOXES = torch.tensor([[0, 0, 4.0, 4.0], [1, 1, 5, 5]])
SCORES = torch.tensor([0.9, 0.8])

ROI_OPS = [ops.roi_align, ops.roi_pool, ops.roi_crop]


@pytest.mark.parametrize("op", ROI_OPS)
@pytest.mark.parametrize(
    "input, rois, output_size, error, message",
    [
        (FEATURE, ROIS[:, 1:], 2, ValueError, "without batch index"),
        (FEATURE, torch.zeros(3, 6), 2, ValueError, r"rois must be a \[K, 5\] tensor"),
        (FEATURE, torch.zeros(5), 2, ValueError, r"rois must be a \[K, 5\] tensor"),
        (FEATURE, [torch.zeros(2, 5)], 2, ValueError, r"rois\[0\] must be a \[Ki, 4\] tensor"),
        (FEATURE, [ROIS[:, 1:], "box"], 2, TypeError, r"rois\[1\] must be a \[Ki, 4\] tensor"),
        (FEATURE, "rois", 2, TypeError, "rois must be a"),
        (FEATURE, ROIS.double(), 2, TypeError, "input and rois must have the same dtype"),
        (FEATURE, ROIS.long(), 2, TypeError, "rois must be a floating point tensor"),
        (FEATURE[0], ROIS, 2, ValueError, r"input must be a 4-D \[N, C, H, W\] tensor"),
        (FEATURE.long(), ROIS, 2, TypeError, "input must be a floating point tensor"),
        ([[1.0]], ROIS, 2, TypeError, "input must be a torch.Tensor"),
        (FEATURE, ROIS, 0, ValueError, "output_size must be positive"),
        (FEATURE, ROIS, (3, -1), ValueError, "output_size must be positive"),
        (FEATURE, ROIS, (3, 3, 3), ValueError, r"output_size must be an int or a \(height, width\)"),
        (FEATURE, ROIS, 2.5, TypeError, "output_size must be an int"),
        (FEATURE, ROIS, True, TypeError, "output_size must be an int"),
    ],
)
def test_roi_ops_reject_bad_arguments(op, input, rois, output_size, error, message):
    with pytest.raises(error, match=message):
        op(input, rois, output_size)


@pytest.mark.parametrize("op", ROI_OPS)
def test_roi_ops_reject_bad_spatial_scale(op):
    with pytest.raises(ValueError, match="spatial_scale must be a positive finite number"):
        op(FEATURE, ROIS, 2, spatial_scale=0.0)
    with pytest.raises(TypeError, match="spatial_scale must be a number"):
        op(FEATURE, ROIS, 2, spatial_scale="1/16")


def test_roi_align_rejects_bad_settings():
    with pytest.raises(TypeError, match="sampling_ratio must be an int"):
        ops.roi_align(FEATURE, ROIS, 2, 1.0, sampling_ratio=2.0)
    with pytest.raises(TypeError, match="aligned must be a bool"):
        ops.roi_align(FEATURE, ROIS, 2, 1.0, 2, aligned=1)
    with pytest.raises(ValueError, match="output_size must be positive"):
        ops.RoIAlign(0)


@pytest.mark.parametrize(
    "op, settings",
    [("roi_align", (1.0, 2, 2, 0, False)), ("roi_pool", (1.0, 2, 2)), ("roi_crop", (1.0, 2, 2))],
)
def test_batch_index_out_of_range_is_rejected(op, settings):
    """The CPU kernels check the batch index instead of reading past the input."""
    bad = torch.tensor([[2.0, 1.0, 1.0, 5.0, 5.0]])
    with pytest.raises(ValueError, match=r"rois\[0, 0\] = 2 is not a batch index in \[0, 2\)"):
        getattr(OPS, op)(FEATURE, bad, *settings)
    with pytest.raises(ValueError, match="is not a batch index"):
        getattr(ops, op)(FEATURE, torch.tensor([[0.5, 1.0, 1.0, 5.0, 5.0]]), 2)


def test_compiled_kernels_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"roi_align: rois must be a \[K, 5\] tensor"):
        OPS.roi_align(FEATURE, ROIS[:, 1:], 1.0, 2, 2, 0, False)
    with pytest.raises(ValueError, match="output_size must be positive"):
        OPS.roi_pool(FEATURE, ROIS, 1.0, 0, 2)
    with pytest.raises(ValueError, match=r"roi_crop_backward: grad must have shape"):
        OPS.roi_crop_backward(torch.zeros(1, 3, 2, 3), ROIS, 1.0, 2, 2, 2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"nms: boxes must be a \[N, 4\] tensor"):
        OPS.nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(TypeError, match="batched_nms: idxs must be an integer tensor"):
        OPS.batched_nms(BOXES, SCORES, torch.zeros(2), 0.5)


@pytest.mark.parametrize(
    "boxes, scores, error, message",
    [
        (BOXES[:, :3], SCORES, ValueError, r"boxes must be a \[N, 4\] tensor"),
        (BOXES, SCORES[:1], ValueError, r"scores must be a \[N\] tensor with N = 2"),
        (BOXES, SCORES[:, None], ValueError, r"scores must be a \[N\] tensor"),
        (BOXES, SCORES.double(), TypeError, "boxes and scores must have the same dtype"),
        (BOXES.long(), SCORES, TypeError, "boxes must be a floating point tensor"),
        (BOXES.tolist(), SCORES, TypeError, "boxes must be a torch.Tensor"),
    ],
)
def test_nms_rejects_bad_arguments(boxes, scores, error, message):
    with pytest.raises(error, match=message):
        ops.nms(boxes, scores, 0.5)
    with pytest.raises(error, match=message):
        ops.batched_nms(boxes, scores, torch.zeros(2, dtype=torch.int64), 0.5)


def test_nms_rejects_bad_settings():
    with pytest.raises(TypeError, match="iou_threshold must be a number"):
        ops.nms(BOXES, SCORES, "0.5")
    with pytest.raises(TypeError, match="plus_one must be a bool"):
        ops.nms(BOXES, SCORES, 0.5, plus_one=1)
    with pytest.raises(ValueError, match=r"idxs must be a \[N\] tensor with N = 2"):
        ops.batched_nms(BOXES, SCORES, torch.zeros(3, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match="idxs must be an integer tensor"):
        ops.batched_nms(BOXES, SCORES, torch.zeros(2), 0.5)


def test_device_mismatch_is_reported():
    meta_rois = ROIS.to("meta")
    with pytest.raises(ValueError, match="input and rois must be on the same device"):
        ops.roi_align(FEATURE, meta_rois, 2)
    with pytest.raises(ValueError, match=r"input and rois\[1\] must be on the same device"):
        ops.roi_pool(FEATURE, [ROIS[:, 1:], meta_rois[:, 1:]], 2)
    with pytest.raises(ValueError, match="boxes and scores must be on the same device"):
        ops.nms(BOXES, SCORES.to("meta"), 0.5)
