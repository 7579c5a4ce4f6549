"""float16 and bfloat16 on CPU: every op computes the half tensors' values in float32
and rounds its floating outputs once, so the result equals the float32 op on the widened
inputs, rounded; where torchvision computes float16 on CPU, it agrees to half precision."""

import pytest
import torch
import torchvision
from ops_inputs import clustered_boxes, random_map, random_rois
from ops_reference import roi_align_reference

import pydetectron.ops as ops
from pydetectron.ops._library import OPS

HALF_TYPES = [torch.float16, torch.bfloat16]
ROI_CASES = [("roi_align", (0, False)), ("roi_align", (2, True)), ("roi_pool", ()), ("roi_crop", ())]


def half_inputs(dtype, channels=6):
    feature = random_map((2, channels, 14, 17), seed=1, dtype=torch.float32).to(dtype)
    rois = random_rois(20, 2, 28, 34, seed=1, dtype=torch.float32).to(dtype)
    return feature, rois


def forward_backward(op, extra, feature, rois):
    x = feature.clone().requires_grad_()
    out = getattr(ops, op)(x, rois, (3, 4), 0.5, *extra)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.dtype)
    out.backward(grad)
    return out.detach(), x.grad


@pytest.mark.parametrize("dtype", HALF_TYPES)
@pytest.mark.parametrize("op, extra", ROI_CASES)
def test_roi_ops_equal_float32_on_widened_inputs(op, extra, dtype):
    feature, rois = half_inputs(dtype)
    out, grad = forward_backward(op, extra, feature, rois)
    assert out.dtype == dtype and grad.dtype == dtype
    x = feature.float().requires_grad_()
    want = getattr(ops, op)(x, rois.float(), (3, 4), 0.5, *extra)
    upstream = torch.randn(want.shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    want.backward(upstream.float())
    assert torch.equal(out, want.detach().to(dtype))
    assert torch.equal(grad, x.grad.to(dtype))


@pytest.mark.parametrize("channels", [6, 70])  # channel planes and the channels-last kernel
def test_roi_align_float16_is_as_close_to_float64_as_torchvision(channels):
    """torchvision accumulates float16 in float16; ours rounds once. Against the float64
    reference of the same half values, ours is within one float16 rounding (plus the
    float32 sums' error, relative to the largest value) and no further than torchvision's."""
    feature, rois = half_inputs(torch.float16, channels)
    ours = ops.roi_align(feature, rois, 7, 0.5, 0, True).double()
    theirs = torchvision.ops.roi_align(feature, rois, 7, 0.5, 0, True).double()
    exact = roi_align_reference(feature.double(), rois.double(), (7, 7), 0.5, 0, True)
    our_error = (ours - exact).abs()
    assert (our_error <= exact.abs() * 2**-11 + 1e-6 * exact.abs().max() + 2**-24).all()
    assert our_error.max() <= (theirs - exact).abs().max()


def test_roi_pool_float16_equals_torchvision():
    feature, rois = half_inputs(torch.float16)
    output, argmax = OPS.roi_pool(feature, rois, 0.5, 3, 4)
    tv_output, tv_argmax = torch.ops.torchvision.roi_pool(feature, rois, 0.5, 3, 4)
    assert torch.equal(output, tv_output) and torch.equal(argmax, tv_argmax)


@pytest.mark.parametrize("dtype", HALF_TYPES)
def test_nms_and_batched_nms_equal_float32_on_widened_boxes(dtype):
    boxes, scores = clustered_boxes(600, seed=2, dtype=torch.float32)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    idxs = torch.randint(0, 4, (600,), generator=torch.Generator().manual_seed(2))
    for threshold in (0.3, 0.6):
        keep = ops.nms(boxes, scores, threshold)
        assert torch.equal(keep, ops.nms(boxes.float(), scores.float(), threshold))
        assert torch.equal(keep, torchvision.ops.nms(boxes.float(), scores.float(), threshold))
        kept = ops.batched_nms(boxes, scores, idxs, threshold)
        assert torch.equal(kept, ops.batched_nms(boxes.float(), scores.float(), idxs, threshold))
