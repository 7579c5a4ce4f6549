"""pydetectron.ops.roi_align against a float64 reference and torchvision."""

import pytest
import torch
import torchvision
from ops_inputs import random_map, random_rois
from ops_reference import roi_align_reference

from pydetectron.ops import RoIAlign, roi_align

CONFIGS = [  # (spatial_scale, sampling_ratio, aligned)
    (1.0, 2, False),
    (0.5, 0, False),
    (0.25, 2, True),
    (0.125, 0, True),
    (0.25, -1, False),
    (0.5, 3, True),
]


def inputs(scale: float, seed: int, num_rois: int = 12):
    feature = random_map((2, 3, 11, 14), seed)
    rois = random_rois(num_rois, 2, 11 / scale, 14 / scale, seed)
    return feature, rois


@pytest.mark.parametrize("scale, sampling_ratio, aligned", CONFIGS)
def test_forward_and_grad_match_reference(scale, sampling_ratio, aligned):
    feature, rois = inputs(scale, seed=1)
    x = feature.clone().requires_grad_()
    x_ref = feature.clone().requires_grad_()
    out = roi_align(x, rois, (3, 4), scale, sampling_ratio, aligned)
    ref = roi_align_reference(x_ref, rois, (3, 4), scale, sampling_ratio, aligned)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("scale, sampling_ratio, aligned", CONFIGS)
def test_forward_and_grad_match_torchvision(scale, sampling_ratio, aligned):
    feature = random_map((2, 8, 40, 52), seed=2)
    rois = random_rois(60, 2, 40 / scale, 52 / scale, seed=2)
    x = feature.clone().requires_grad_()
    x_tv = feature.clone().requires_grad_()
    out = roi_align(x, rois, 7, scale, sampling_ratio, aligned)
    tv = torchvision.ops.roi_align(x_tv, rois, 7, scale, sampling_ratio, aligned)
    torch.testing.assert_close(out, tv, rtol=0, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    tv.backward(grad)
    torch.testing.assert_close(x.grad, x_tv.grad, rtol=0, atol=1e-6)


def test_float32_matches_torchvision():
    feature = random_map((2, 16, 30, 40), seed=3, dtype=torch.float32)
    rois = random_rois(40, 2, 120, 160, seed=3, dtype=torch.float32)
    out = roi_align(feature, rois, (7, 7), 0.25, 0, False)
    tv = torchvision.ops.roi_align(feature, rois, (7, 7), 0.25, 0, False)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, tv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_gradcheck(aligned, sampling_ratio):
    feature, rois = inputs(0.5, seed=4, num_rois=4)
    x = feature[:, :2, :7, :8].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: roi_align(t, rois, (2, 3), 0.5, sampling_ratio, aligned), (x,)
    )
    assert torch.autograd.gradgradcheck(
        lambda t: roi_align(t, rois, (2, 3), 0.5, sampling_ratio, aligned), (x,)
    )


def test_list_of_boxes_equals_rois_tensor():
    feature, rois = inputs(0.5, seed=5)
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    ordered = torch.cat([rois[rois[:, 0] == i] for i in range(2)])
    assert torch.equal(roi_align(feature, per_image, 3, 0.5), roi_align(feature, ordered, 3, 0.5))


def test_module_equals_function():
    feature, rois = inputs(0.25, seed=6)
    module = RoIAlign((3, 2), spatial_scale=0.25, sampling_ratio=2, aligned=True)
    assert torch.equal(module(feature, rois), roi_align(feature, rois, (3, 2), 0.25, 2, True))
    assert "aligned=True" in repr(module)


def test_empty_rois_and_empty_channels():
    feature, _ = inputs(1.0, seed=7)
    x = feature.clone().requires_grad_()
    out = roi_align(x, torch.zeros(0, 5, dtype=torch.float64), 7)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(feature))
    assert roi_align(feature, [torch.zeros(0, 4, dtype=torch.float64)] * 2, 2).shape == (0, 3, 2, 2)
    no_channels = torch.zeros(2, 0, 5, 5, dtype=torch.float64)
    assert roi_align(no_channels, random_rois(3, 2, 5, 5, seed=7), 2).shape == (3, 0, 2, 2)


def test_non_contiguous_and_channels_last_inputs():
    feature, rois = inputs(0.5, seed=8)
    expected = roi_align(feature, rois, 3, 0.5, 2)
    channels_last = feature.contiguous(memory_format=torch.channels_last)
    transposed = feature.transpose(2, 3).contiguous().transpose(2, 3)
    strided_rois = torch.cat([rois, rois], dim=1)[:, :5]
    for variant in (channels_last, transposed):
        assert not variant.is_contiguous()
        torch.testing.assert_close(roi_align(variant, rois, 3, 0.5, 2), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(roi_align(feature, strided_rois, 3, 0.5, 2), expected, rtol=0, atol=0)
    x = channels_last.clone().requires_grad_()
    roi_align(x, rois, 3, 0.5, 2).sum().backward()
    x_ref = feature.clone().requires_grad_()
    roi_align(x_ref, rois, 3, 0.5, 2).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-12)


def test_samples_outside_the_map_read_zero():
    feature = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    far_away = torch.tensor([[0, 100.0, 100.0, 120.0, 120.0]], dtype=torch.float64)
    assert torch.equal(roi_align(feature, far_away, 2, 1.0, 2), torch.zeros(1, 1, 2, 2).double())
    inside = torch.tensor([[0, 0.5, 0.5, 2.5, 2.5]], dtype=torch.float64)
    assert torch.equal(roi_align(feature, inside, 2, 1.0, 2), torch.ones(1, 1, 2, 2).double())


@pytest.mark.parametrize(
    "map_size, num_rois, channels_last",
    [
        ((60, 80), 3, False),  # few RoIs on a large map: channel-plane kernel
        ((12, 16), 80, False),  # many RoIs on a small map: channels-last copy
        ((30, 40), 10, True),  # channels_last input: channels-last kernel, no copy
    ],
)
@pytest.mark.parametrize("sampling_ratio, aligned", [(2, False), (0, True)])
def test_both_kernel_layouts_match_torchvision(map_size, num_rois, channels_last, sampling_ratio,
                                               aligned):
    height, width = map_size
    feature = random_map((2, 70, height, width), seed=9)  # 70: two channel blocks, one partial
    if channels_last:
        feature = feature.contiguous(memory_format=torch.channels_last)
    rois = random_rois(num_rois, 2, height * 4, width * 4, seed=9)
    x = feature.clone().requires_grad_()
    x_tv = feature.clone().requires_grad_()
    out = roi_align(x, rois, (5, 4), 0.25, sampling_ratio, aligned)
    tv = torchvision.ops.roi_align(x_tv, rois, (5, 4), 0.25, sampling_ratio, aligned)
    torch.testing.assert_close(out, tv, rtol=0, atol=1e-10)
    grad = torch.randn_like(out)
    out.backward(grad)
    tv.backward(grad)
    torch.testing.assert_close(x.grad, x_tv.grad, rtol=0, atol=1e-10)
