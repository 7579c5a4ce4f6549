"""Necks on lists of maps: output widths, sizes and strides, for every neck and any body."""

import pytest
import torch

from pydetectron import backbones, necks


def pyramid(channels, height=129, width=161, batch=2, first_stride=4, seed=0):
    """Random maps at strides first_stride, 2x, ... with sizes as stride-2 convs give them."""
    generator = torch.Generator().manual_seed(seed)
    maps = []
    h, w = -(-height // first_stride), -(-width // first_stride)
    for c in channels:
        maps.append(torch.randn(batch, c, h, w, generator=generator))
        h, w = -(-h // 2), -(-w // 2)
    return maps


NECKS = {
    "fpn_sum": lambda c: necks.FPN(c, 32),
    "fpn_concat": lambda c: necks.FPN(c, 32, fusion="concat"),
    "pan_sum": lambda c: necks.PAN(c, 32),
    "pan_concat": lambda c: necks.PAN(c, 32, fusion="concat"),
    "bifpn": lambda c: necks.BiFPN(c, 32, num_layers=2),
    "bifpn_weighted_separable": lambda c: necks.BiFPN(c, 32, num_layers=3, weighted_fusion=True, separable=True),
}


@pytest.mark.parametrize("kind", list(NECKS))
@pytest.mark.parametrize("channels", [(24, 40, 112, 320), (64, 128, 256, 512, 1024), (16, 8)])
def test_outputs_keep_input_sizes_and_have_out_channels(kind, channels):
    neck = NECKS[kind](channels)
    maps = pyramid(channels)
    outputs = neck(maps)
    assert neck.num_outputs == len(outputs) == len(maps)
    for out, x in zip(outputs, maps):
        assert out.shape == (x.shape[0], neck.out_channels, *x.shape[-2:])
    strides = [4 * 2**i for i in range(len(channels))]
    assert neck.output_strides(strides) == strides


EXTRA_LEVEL_NECKS = {
    "fpn_maxpool": lambda c: necks.FPN(c, 16, num_extra_levels=2, extra_mode="maxpool"),
    "fpn_conv": lambda c: necks.FPN(c, 16, num_extra_levels=2, extra_mode="conv"),
    "pan_maxpool": lambda c: necks.PAN(c, 16, num_extra_levels=2, extra_mode="maxpool"),
    "pan_conv": lambda c: necks.PAN(c, 16, num_extra_levels=2, extra_mode="conv"),
    "bifpn": lambda c: necks.BiFPN(c, 16, num_extra_levels=2),  # max pooled, before the layers
}


@pytest.mark.parametrize("kind", list(EXTRA_LEVEL_NECKS))
def test_extra_levels_double_the_last_stride(kind):
    channels = (32, 64, 128)
    neck = EXTRA_LEVEL_NECKS[kind](channels)
    maps = pyramid(channels, first_stride=8)
    outputs = neck(maps)
    assert neck.num_outputs == len(outputs) == 5
    assert neck.output_strides([8, 16, 32]) == [8, 16, 32, 64, 128]
    h, w = maps[-1].shape[-2:]
    for out in outputs[3:]:
        h, w = -(-h // 2), -(-w // 2)
        assert out.shape == (2, 16, h, w)


def test_semantic_fpn_merges_into_one_map_at_the_finest_stride():
    channels = (64, 128, 256, 512)
    neck = necks.SemanticFPN(channels, out_channels=24, fpn_channels=32)
    maps = pyramid(channels)
    (merged,) = neck(maps)
    assert neck.num_outputs == 1
    assert merged.shape == (2, 24, *maps[0].shape[-2:])
    assert neck.output_strides([4, 8, 16, 32]) == [4]
    # Level i gets max(i, 1) convs: 1, 1, 2, 3 (Panoptic FPN's semantic branch).
    assert [len(head) for head in neck.scale_heads] == [1, 1, 2, 3]


@pytest.mark.parametrize("name", ["darknet_yolov5n", "vovnet19_slim_ese", "mobilenet_v3_small"])
@pytest.mark.parametrize("neck_cls", [necks.FPN, necks.PAN, necks.BiFPN, necks.SemanticFPN])
@torch.no_grad()
def test_any_body_through_the_contract(name, neck_cls):
    body = backbones.build_backbone(name).eval()
    neck = neck_cls(body.out_channels_list[-4:], 32).eval()
    maps = body.get_feature_maps(torch.randn(1, 3, 129, 161))[-4:]
    outputs = neck(maps)
    strides = neck.output_strides(body.feature_strides[-4:])
    assert len(outputs) == len(strides) == neck.num_outputs
    for out, stride in zip(outputs, strides):
        assert out.shape[1] == neck.out_channels
        assert abs(out.shape[-2] - 129 / stride) < 1 and abs(out.shape[-1] - 161 / stride) < 1


def test_bad_inputs_are_named():
    neck = necks.FPN((8, 16), 4)
    with pytest.raises(ValueError, match="FPN: expected a list of 2 maps, got 1"):
        neck([torch.zeros(1, 8, 4, 4)])
    with pytest.raises(ValueError, match=r"FPN: input 1 should be \[N, 16, H, W\], got \(1, 12, 2, 2\)"):
        neck([torch.zeros(1, 8, 4, 4), torch.zeros(1, 12, 2, 2)])
    with pytest.raises(ValueError, match="fusion must be one of"):
        necks.PAN((8, 16), 4, fusion="max")
    with pytest.raises(ValueError, match="extra level mode"):
        necks.FPN((8, 16), 4, num_extra_levels=1, extra_mode="avg")
    with pytest.raises(ValueError, match="BiFPN needs at least 2 levels"):
        necks.BiFPN((8,), 4)
