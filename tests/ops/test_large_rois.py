"""RoIs far larger than the map, huge sample grids and NaN / infinite RoIs: RoIAlign and
RoIPool give the exact answer (float64 references) instead of overflowing."""

import math

import pytest
import torch
from ops_inputs import random_map, random_rois
from ops_reference import roi_align_reference, roi_pool_reference

from pydetectron.ops import roi_align, roi_pool
from pydetectron.ops._library import OPS


def axis_weights(start: float, bin_size: float, pooled: int, grid: int, size: int) -> torch.Tensor:
    """[pooled, size]: the summed bilinear weights of every sample of each bin along one
    axis (RoIAlign's rules: zero outside [-1, size], clamped at the edges), float64."""
    p = torch.arange(pooled, dtype=torch.float64)[:, None]
    i = torch.arange(grid, dtype=torch.float64)[None, :]
    pos = (start + p * bin_size + (i + 0.5) * bin_size / grid).expand(pooled, grid)
    inside = ((pos >= -1) & (pos <= size)).double()
    v = pos.clamp(min=0)
    lo = v.floor().long().clamp(max=size - 1)
    v = torch.where(lo >= size - 1, lo.double(), v)
    hi = (lo + 1).clamp(max=size - 1)
    w_hi = (v - lo) * inside
    w_lo = (1 - (v - lo)) * inside
    weights = torch.zeros(pooled, size, dtype=torch.float64)
    weights.scatter_add_(1, lo, w_lo)
    weights.scatter_add_(1, hi, w_hi)
    return weights


def roi_align_separable_reference(input, rois, output_size, spatial_scale, sampling_ratio,
                                  aligned):
    """RoIAlign as Wy @ plane @ Wx^T / (grid_h * grid_w) with per-axis sample weights:
    the same definition as ops_reference.roi_align_reference, but the samples of an axis
    are enumerated once, so grids of 10^5 samples per axis stay cheap."""
    out_h, out_w = output_size
    height, width = input.shape[-2:]
    outputs = []
    for roi in rois.double().tolist():
        shift = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (v * spatial_scale - shift for v in roi[1:])
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_h / out_h), 0)
        grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_w / out_w), 0)
        if grid_h * grid_w == 0:
            outputs.append(input.new_zeros(input.shape[1], out_h, out_w))
            continue
        wy = axis_weights(y1, roi_h / out_h, out_h, grid_h, height).to(input.dtype)
        wx = axis_weights(x1, roi_w / out_w, out_w, grid_w, width).to(input.dtype)
        plane = input[int(roi[0])]
        outputs.append(torch.einsum("ph,chw,qw->cpq", wy, plane, wx) / (grid_h * grid_w))
    return torch.stack(outputs)


def test_separable_reference_equals_the_plain_reference():
    feature = random_map((2, 3, 11, 14), seed=1)
    rois = random_rois(8, 2, 22, 28, seed=1)
    for ratio, aligned in ((0, False), (2, True), (3, False)):
        torch.testing.assert_close(
            roi_align_separable_reference(feature, rois, (3, 4), 0.5, ratio, aligned),
            roi_align_reference(feature, rois, (3, 4), 0.5, ratio, aligned),
            rtol=0, atol=1e-12,
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_count_above_int32(dtype):
    """324387 / 7 = 46341 samples per axis: 46341^2 > 2^31 samples per bin."""
    ones = torch.ones(1, 1, 5, 5, dtype=dtype)
    roi = torch.tensor([[0, 0, 0, 324387, 324387]], dtype=dtype)
    out = roi_align(ones, roi, 7)
    expected = torch.zeros(1, 1, 7, 7, dtype=dtype)
    expected[0, 0, 0, 0] = 25 / 46341**2  # 5 x 5 samples land on the map, all read 1
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("aligned", [False, True])
def test_huge_rois_match_reference_forward_and_backward(aligned):
    feature = random_map((2, 3, 9, 12), seed=2)
    rois = torch.tensor(
        [
            [0, 0, 0, 324387, 324387],
            [1, -250000.5, -3.25, 410000.75, 8.5],  # huge in x only
            [0, 2.5, -1e5, 7.0, 2e5],  # huge in y only
            [1, -7e4, -9e4, 5e4, 6e4],  # covers the map from far outside
        ],
        dtype=torch.float64,
    )
    x = feature.clone().requires_grad_()
    x_ref = feature.clone().requires_grad_()
    out = roi_align(x, rois, (3, 4), 0.5, 0, aligned)
    ref = roi_align_separable_reference(x_ref, rois, (3, 4), 0.5, 0, aligned)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-22)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-22)


def test_huge_sampling_ratio_matches_reference():
    feature = random_map((1, 2, 8, 8), seed=3)
    rois = torch.tensor([[0, 1.0, 0.5, 6.5, 5.0], [0, -3.0, -2.0, 11.0, 12.0]], dtype=torch.float64)
    out = roi_align(feature, rois, (2, 3), 1.0, 3000, True)
    ref = roi_align_separable_reference(feature, rois, (2, 3), 1.0, 3000, True)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize(
    "roi",
    [
        [0, float("nan"), 1.0, 5.0, 5.0],
        [0, 1.0, 1.0, float("nan"), 5.0],
        [0, 0.0, 0.0, float("inf"), float("inf")],
        [0, float("-inf"), 0.0, 3.0, 4.0],
    ],
)
def test_nan_and_infinite_rois_read_nothing(roi, aligned):
    """No sample of a NaN or infinite RoI lies on the map: zeros, no gradient."""
    feature = random_map((1, 2, 6, 6), seed=4).requires_grad_()
    out = roi_align(feature, torch.tensor([roi], dtype=torch.float64), 2, 1.0, 0, aligned)
    assert torch.equal(out, torch.zeros(1, 2, 2, 2, dtype=torch.float64))
    out.sum().backward()
    assert torch.equal(feature.grad, torch.zeros_like(feature))


@pytest.mark.parametrize("dtype, count", [(torch.float64, 3), (torch.float32, 2)])
def test_roi_pool_huge_rois_match_reference(dtype, count):
    """Pixel indices beyond int32. (float32 computes bin fractions in float32, as
    torchvision does: its bin edges of RoIs beyond 2^24 pixels round, so the third RoI,
    whose last bin row ends 4 pixels into a 6e10-pixel RoI, is float64 only.)"""
    feature = random_map((2, 3, 10, 12), seed=5, dtype=dtype)
    rois = torch.tensor(
        [
            [0, -1e12, -1e12, 1e12, 1e12],  # the middle bin covers the map
            [1, -3e9, 2.0, 5e9, 6.0],
            [0, 1.0, -6e10, 7.0, 3.0],
        ][:count],
        dtype=dtype,
    )
    out = roi_pool(feature, rois, (7, 5), 1.0)
    ref = roi_pool_reference(feature.double(), rois, (7, 5), 1.0)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=0)


@pytest.mark.parametrize("column", [1, 2, 3, 4])
def test_roi_pool_nan_roi_has_only_empty_bins(column):
    feature = random_map((1, 2, 6, 6), seed=6)
    roi = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]], dtype=torch.float64)
    roi[0, column] = float("nan")
    output, argmax = OPS.roi_pool(feature, roi, 1.0, 2, 2)
    assert torch.equal(output, torch.zeros(1, 2, 2, 2, dtype=torch.float64))
    assert torch.equal(argmax, torch.full((1, 2, 2, 2), -1, dtype=torch.int32))
