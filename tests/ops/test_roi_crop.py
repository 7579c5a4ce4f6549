"""pydetectron.ops.roi_crop against affine_grid + grid_sample (Detectron.pytorch's
RoICrop transform), values and gradients."""

import pytest
import torch
from ops_inputs import random_map, random_rois
from ops_reference import roi_crop_reference

from pydetectron.ops import RoICrop, roi_crop


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.0625])
@pytest.mark.parametrize("output_size", [(7, 7), (4, 9), (14, 3)])
def test_forward_and_grad_match_grid_sample(scale, output_size):
    feature = random_map((2, 4, 13, 17), seed=1)
    rois = random_rois(20, 2, 13 / scale, 17 / scale, seed=int(1 / scale))
    x = feature.clone().requires_grad_()
    x_ref = feature.clone().requires_grad_()
    out = roi_crop(x, rois, output_size, scale)
    ref = roi_crop_reference(x_ref, rois, output_size, scale)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-10)


def test_single_row_samples_the_centre():
    feature = random_map((1, 2, 9, 9), seed=2)
    rois = torch.tensor([[0, 1.0, 2.0, 7.0, 5.0]], dtype=torch.float64)
    out = roi_crop(feature, rois, (1, 3))
    # one row: y = (2 + 5) / 2 = 3.5; three columns: x = 1, 4, 7
    torch.testing.assert_close(out[0, :, 0, 1], (feature[0, :, 3, 4] + feature[0, :, 4, 4]) / 2)


def test_float32_and_gradcheck():
    feature = random_map((2, 2, 6, 8), seed=3)
    rois = random_rois(5, 2, 12, 16, seed=3)
    ref = roi_crop_reference(feature.float(), rois.float(), (3, 4), 0.5)
    torch.testing.assert_close(roi_crop(feature.float(), rois.float(), (3, 4), 0.5), ref)
    x = feature.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: roi_crop(t, rois, (3, 4), 0.5), (x,))
    assert torch.autograd.gradgradcheck(lambda t: roi_crop(t, rois, (3, 4), 0.5), (x,))


def test_module_empty_and_channels_last():
    feature = random_map((2, 3, 10, 12), seed=4)
    rois = random_rois(6, 2, 20, 24, seed=4)
    module = RoICrop((5, 6), spatial_scale=0.5)
    expected = roi_crop(feature, rois, (5, 6), 0.5)
    assert torch.equal(module(feature, rois), expected)
    channels_last = feature.contiguous(memory_format=torch.channels_last)
    assert torch.equal(module(channels_last, rois), expected)
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    ordered = torch.cat([rois[rois[:, 0] == i] for i in range(2)])
    assert torch.equal(module(feature, per_image), module(feature, ordered))
    assert module(feature, torch.zeros(0, 5, dtype=torch.float64)).shape == (0, 3, 5, 6)
