"""ViTDet's simple feature pyramid against a float64 functional reference written here."""

import pytest
import torch
import torch.nn.functional as F
from ported_parity_support import randomize_

from pydetectron.backbones.ported import SimpleFeaturePyramid, VisionTransformer


def _channel_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight.double()[None, :, None, None] + bias.double()[
        None, :, None, None
    ]


def _reference(module: SimpleFeaturePyramid, x: torch.Tensor) -> list[torch.Tensor]:
    """ViTDet's recipe, step by step in float64 from the module's parameters."""
    outputs = []
    for name, scale in zip(module.stage_names, module.scale_factors):
        layers = list(getattr(module, name))
        y = x.double()
        if scale == 4.0:
            up1, norm, _, up2 = layers[:4]
            y = F.conv_transpose2d(y, up1.weight.double(), up1.bias.double(), stride=2)
            y = F.gelu(_channel_layer_norm(y, norm.weight, norm.bias))
            y = F.conv_transpose2d(y, up2.weight.double(), up2.bias.double(), stride=2)
        elif scale == 2.0:
            y = F.conv_transpose2d(y, layers[0].weight.double(), layers[0].bias.double(), stride=2)
        elif scale == 0.5:
            y = F.max_pool2d(y, kernel_size=2, stride=2)
        lateral, output = layers[-2:]
        y = _channel_layer_norm(F.conv2d(y, lateral.weight.double()), lateral.norm.weight, lateral.norm.bias)
        y = _channel_layer_norm(F.conv2d(y, output.weight.double(), padding=1), output.norm.weight, output.norm.bias)
        outputs.append(y)
    return outputs


def test_pyramid_matches_float64_reference():
    torch.manual_seed(0)
    module = randomize_(SimpleFeaturePyramid(in_channels=64, out_channels=32)).eval()
    assert module.strides == (4, 8, 16, 32) and module.out_channels == 32
    assert module.stage_names == ["simfp_2", "simfp_3", "simfp_4", "simfp_5"]
    x = torch.randn(2, 64, 10, 14)
    with torch.no_grad():
        outputs = module(x)
    expected = _reference(module, x)
    assert [tuple(o.shape) for o in outputs] == [(2, 32, 40, 56), (2, 32, 20, 28), (2, 32, 10, 14), (2, 32, 5, 7)]
    for ours, ref in zip(outputs, expected):
        torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)
    # the convs carry no bias when normalised (ViTDet's norm="LN")
    assert module.simfp_2[4].bias is None and module.simfp_2[4].norm.weight.shape == (32,)


def test_pyramid_on_a_vitdet_backbone_gives_strides_4_to_32():
    backbone = VisionTransformer(img_size=64, embed_dim=64, depth=2, num_heads=2, window_size=2, global_blocks=(1,))
    pyramid = SimpleFeaturePyramid(backbone.out_channels_list[0], out_channels=16, in_stride=backbone.stride)
    maps = pyramid(backbone(torch.randn(1, 3, 96, 64)))
    assert [m.shape[-2:] for m in maps] == [(24, 16), (12, 8), (6, 4), (3, 2)]
    sum(m.sum() for m in maps).backward()
    assert backbone.patch_embed.proj.weight.grad is not None


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="scale factor 3.0"):
        SimpleFeaturePyramid(64, scale_factors=(3.0,))
    with pytest.raises(ValueError, match=r"expected \[N, 64, H, W\]"):
        SimpleFeaturePyramid(64)(torch.randn(1, 32, 4, 4))
