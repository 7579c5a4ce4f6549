"""Necks against float64 functional references written here, and the properties that tell
the designs apart (a real bottom-up path, BiFPN's fast normalised fusion)."""

import pytest
import torch
import torch.nn.functional as F

from pydetectron import necks
from pydetectron.necks.bifpn import FusionNode


def double_eval(module, seed=0):
    """float64, eval mode, and random BatchNorm statistics so the norms matter."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=generator) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=generator) * 0.1
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return module.double().eval()


def maps_for(channels, sizes, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, h, w, generator=generator, dtype=torch.float64) for c, (h, w) in zip(channels, sizes)]


def ref_conv_bn_relu(x, unit, stride=1):
    y = F.conv2d(x, unit.conv.weight, unit.conv.bias, stride=stride, padding=1)
    bn = unit.norm
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    return (y * bn.weight[:, None, None] + bn.bias[:, None, None]).clamp_min(0)


def nearest_to(x, size):
    """Nearest resampling by index arithmetic: source index floor(i * in / out)."""
    rows = (torch.arange(size[0]) * x.shape[-2] // size[0]).long()
    cols = (torch.arange(size[1]) * x.shape[-1] // size[1]).long()
    return x[..., rows, :][..., cols]


def ref_fpn(fpn, maps, fusion):
    laterals = [F.conv2d(x, conv.weight, conv.bias) for conv, x in zip(fpn.lateral_convs, maps)]
    outs = [None] * len(maps)
    outs[-1] = laterals[-1]
    for i in reversed(range(len(maps) - 1)):
        up = nearest_to(outs[i + 1], laterals[i].shape[-2:])
        merged = laterals[i] + up if fusion == "sum" else torch.cat([laterals[i], up], 1)
        outs[i] = ref_conv_bn_relu(merged, fpn.output_convs[i])
    return outs


SIZES = [(29, 38), (15, 19), (8, 10)]  # a 225 x 301 image at strides 8, 16, 32


@pytest.mark.parametrize("fusion", ["sum", "concat"])
def test_fpn_matches_reference(fusion):
    channels = (8, 16, 32)
    fpn = double_eval(necks.FPN(channels, 6, fusion=fusion))
    maps = maps_for(channels, SIZES)
    for ours, ref in zip(fpn(maps), ref_fpn(fpn, maps, fusion)):
        torch.testing.assert_close(ours, ref)


def test_fpn_coarsest_output_is_the_plain_lateral():
    channels = (8, 16)
    fpn = double_eval(necks.FPN(channels, 6))
    maps = maps_for(channels, SIZES[:2])
    conv = fpn.lateral_convs[-1]
    torch.testing.assert_close(fpn(maps)[-1], F.conv2d(maps[-1], conv.weight, conv.bias))


@pytest.mark.parametrize("fusion", ["sum", "concat"])
def test_pan_matches_reference(fusion):
    channels = (8, 16, 32)
    pan = double_eval(necks.PAN(channels, 6, fusion=fusion))
    maps = maps_for(channels, SIZES)
    top_down = ref_fpn(pan.fpn, maps, fusion)
    expected = [top_down[0]]
    for i in range(len(maps) - 1):
        down = ref_conv_bn_relu(expected[-1], pan.downsample_convs[i], stride=2)
        merged = top_down[i + 1] + down if fusion == "sum" else torch.cat([top_down[i + 1], down], 1)
        expected.append(ref_conv_bn_relu(merged, pan.bottom_up_convs[i]))
    for ours, ref in zip(pan(maps), expected):
        torch.testing.assert_close(ours, ref)


def _depends_on_finest_input(neck, channels):
    maps = [m.requires_grad_() for m in maps_for(channels, SIZES)]
    neck(maps)[-1].sum().backward()
    return maps[0].grad is not None and maps[0].grad.abs().sum() > 0


def test_bottom_up_paths_reach_the_coarsest_output():
    channels = (8, 16, 32)
    # A top-down FPN's coarsest output never sees the finest input; PAN's and BiFPN's do.
    assert not _depends_on_finest_input(double_eval(necks.FPN(channels, 6)), channels)
    assert _depends_on_finest_input(double_eval(necks.PAN(channels, 6)), channels)
    assert _depends_on_finest_input(double_eval(necks.BiFPN(channels, 6)), channels)


def test_fast_normalised_fusion_hand_computed():
    node = double_eval(FusionNode(1, 3, weighted=True, separable=False, norm=None, eps=1e-4))
    node.weights.data = torch.tensor([2.0, -1.0, 1.0], dtype=torch.float64)
    node.conv.conv.weight.data.zero_()
    node.conv.conv.weight.data[0, 0, 1, 1] = 1.0  # the conv is the identity (then ReLU)
    inputs = [torch.full((1, 1, 3, 3), v, dtype=torch.float64) for v in (3.0, 100.0, 6.0)]
    # relu(w) = (2, 0, 1): (2 * 3 + 0 * 100 + 1 * 6) / (3 + 1e-4)
    expected = torch.full((1, 1, 3, 3), 12.0 / 3.0001, dtype=torch.float64)
    torch.testing.assert_close(node(inputs), expected)


def test_bifpn_layer_matches_reference():
    channels = (8, 16, 32)
    neck = double_eval(necks.BiFPN(channels, 6, num_layers=1, weighted_fusion=True))
    layer = neck.layers[0]
    generator = torch.Generator().manual_seed(3)
    for node in list(layer.top_down_nodes) + list(layer.bottom_up_nodes):
        node.weights.data = torch.rand(node.weights.shape, generator=generator, dtype=torch.float64) * 2 - 0.5
    maps = maps_for(channels, SIZES)

    def node_ref(node, inputs):
        w = node.weights.clamp_min(0)
        fused = sum(wi * x for wi, x in zip(w, inputs)) / (w.sum() + 1e-4)
        return ref_conv_bn_relu(fused, node.conv)

    x = [F.conv2d(m, conv.weight, conv.bias) for conv, m in zip(neck.laterals, maps)]
    td = list(x)
    for i in (1, 0):
        td[i] = node_ref(layer.top_down_nodes[i], [x[i], nearest_to(td[i + 1], x[i].shape[-2:])])
    out = [td[0]]
    for i in (1, 2):
        down = F.max_pool2d(out[-1], 3, 2, 1)
        inputs = [x[i], td[i], down] if i < 2 else [x[i], down]
        out.append(node_ref(layer.bottom_up_nodes[i - 1], inputs))
    for ours, ref in zip(neck(maps), out):
        torch.testing.assert_close(ours, ref)


def test_semantic_fpn_matches_reference():
    channels = (8, 16, 32)
    neck = double_eval(necks.SemanticFPN(channels, out_channels=5, fpn_channels=6))
    maps = maps_for(channels, SIZES)
    pyramid = ref_fpn(neck.fpn, maps, "sum")
    total = 0
    for level, (p, convs) in enumerate(zip(pyramid, neck.scale_heads)):
        x = p
        for j, conv in enumerate(convs):
            x = ref_conv_bn_relu(x, conv)
            if level > 0:
                x = F.interpolate(x, size=pyramid[level - 1 - j].shape[-2:], mode="bilinear", align_corners=False)
        total = total + x
    torch.testing.assert_close(neck(maps)[0], total)
