"""RoI pooling over FPN levels against torchvision's MultiScaleRoIAlign."""

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from pydetectron.modeling.roi_heads.roi_pooler import RoIPooler


def test_fpn_pooling_matches_torchvision_multiscale_roialign():
    torch.manual_seed(0)
    image_size = (128, 192)
    feats = [torch.randn(2, 8, image_size[0] // s, image_size[1] // s, dtype=torch.float64) for s in (4, 8, 16, 32)]
    xy = torch.rand(40, 2, dtype=torch.float64) * 100
    boxes = torch.cat((xy, xy + torch.rand(40, 2, dtype=torch.float64) * 120 + 2), dim=1)
    batch = torch.cat((torch.zeros(25), torch.ones(15))).to(torch.float64)
    tv = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, sampling_ratio=2)
    expected = tv(OrderedDict(zip(["p2", "p3", "p4", "p5"], feats)), [boxes[:25], boxes[25:]], [image_size] * 2)
    pooler = RoIPooler(7, [4, 8, 16, 32], sampling_ratio=2, level_mapping="torchvision")
    got = pooler(feats, torch.cat((batch[:, None], boxes), dim=1))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["RoIAlign", "RoIPoolF", "RoICrop"])
def test_single_level_methods_run_and_backprop(method):
    feat = torch.randn(1, 4, 20, 30, requires_grad=True)
    rois = torch.tensor([[0.0, 10.0, 10.0, 100.0, 60.0], [0.0, 0.0, 0.0, 40.0, 40.0]])
    out = RoIPooler(7, [4], method=method)([feat], rois)
    assert out.shape == (2, 4, 7, 7)
    out.sum().backward()
    assert feat.grad.abs().sum() > 0


def test_bad_method_named():
    with pytest.raises(ValueError, match="RoI transform method"):
        RoIPooler(7, [16], method="RoIWarp")
