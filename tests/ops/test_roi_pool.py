"""pydetectron.ops.roi_pool against a float64 reference and torchvision."""

import pytest
import torch
import torchvision
from ops_inputs import random_map, random_rois
from ops_reference import roi_pool_reference

from pydetectron.ops import RoIPool, roi_pool


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_forward_and_grad_match_reference(scale):
    feature = random_map((2, 3, 12, 15), seed=1)
    rois = random_rois(10, 2, 12 / scale, 15 / scale, seed=int(scale * 8))
    x = feature.clone().requires_grad_()
    x_ref = feature.clone().requires_grad_()
    out = roi_pool(x, rois, (3, 4), scale)
    ref = roi_pool_reference(x_ref, rois, (3, 4), scale)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", [1.0, 0.25, 0.0625])
def test_forward_and_grad_match_torchvision(dtype, scale):
    feature = random_map((2, 8, 40, 52), seed=2, dtype=dtype)
    rois = random_rois(50, 2, 40 / scale, 52 / scale, seed=3, dtype=dtype)
    x = feature.clone().requires_grad_()
    x_tv = feature.clone().requires_grad_()
    out = roi_pool(x, rois, 7, scale)
    tv = torchvision.ops.roi_pool(x_tv, rois, 7, scale)
    torch.testing.assert_close(out, tv, rtol=0, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    tv.backward(grad)
    torch.testing.assert_close(x.grad, x_tv.grad, rtol=0, atol=1e-6)


def test_gradcheck():
    feature = random_map((2, 2, 6, 7), seed=4)
    rois = random_rois(4, 2, 6, 7, seed=4)
    x = feature.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3)), (x,))
    assert torch.autograd.gradgradcheck(lambda t: roi_pool(t, rois, (2, 3)), (x,))


def test_empty_bins_give_zero_and_no_gradient():
    feature = random_map((1, 2, 5, 5), seed=5).requires_grad_()
    outside = torch.tensor([[0, 20.0, 20.0, 30.0, 30.0]], dtype=torch.float64)
    out = roi_pool(feature, outside, 2)
    assert torch.equal(out, torch.zeros(1, 2, 2, 2, dtype=torch.float64))
    output, argmax = torch.ops.pydetectron.roi_pool(feature.detach(), outside, 1.0, 2, 2)
    assert torch.equal(argmax, torch.full((1, 2, 2, 2), -1, dtype=torch.int32))
    out.sum().backward()
    assert torch.equal(feature.grad, torch.zeros_like(feature))


def test_module_empty_and_channels_last():
    feature = random_map((2, 3, 12, 15), seed=6)
    rois = random_rois(8, 2, 24, 30, seed=6)
    module = RoIPool(3, spatial_scale=0.5)
    expected = roi_pool(feature, rois, 3, 0.5)
    assert torch.equal(module(feature, rois), expected)
    channels_last = feature.contiguous(memory_format=torch.channels_last)
    assert torch.equal(module(channels_last, rois), expected)
    assert module(feature, torch.zeros(0, 5, dtype=torch.float64)).shape == (0, 3, 3, 3)


@pytest.mark.parametrize(
    "map_size, num_rois, channels_last",
    [
        ((60, 80), 3, False),  # few RoIs on a large map: channel-plane kernel
        ((12, 16), 80, False),  # many RoIs on a small map: channels-last copy
        ((30, 40), 10, True),  # channels_last input: channels-last kernel, no copy
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_both_kernel_layouts_match_torchvision(map_size, num_rois, channels_last, dtype):
    height, width = map_size
    feature = random_map((2, 70, height, width), seed=9, dtype=dtype)
    if channels_last:
        feature = feature.contiguous(memory_format=torch.channels_last)
    rois = random_rois(num_rois, 2, height * 4, width * 4, seed=9, dtype=dtype)
    output, argmax = torch.ops.pydetectron.roi_pool(feature, rois, 0.25, 5, 4)
    tv_output, tv_argmax = torch.ops.torchvision.roi_pool(feature, rois, 0.25, 5, 4)
    assert torch.equal(output, tv_output)
    assert torch.equal(argmax, tv_argmax)
