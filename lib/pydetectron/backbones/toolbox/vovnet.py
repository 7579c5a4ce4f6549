"""VoVNet family: VoVNetV1 (27-slim, 39, 57) and VoVNetV2 with eSE (19-slim, 19, 39, 57, 99).

The vision-toolbox variants: a 3-conv stem (stride 2, returned), then four stages, each
opened by a 3x3 stride-2 max pool (kept in stage 2 rather than merged into the stem), made
of One-Shot Aggregation blocks. An OSA block runs `num_layers` 3x3 convs in a chain,
concatenates the block input with every conv output, mixes them with a 1x1 conv, applies
eSE (`ese=True`, in every block) and adds the input when the widths match
(`residual=True`). `residual=False, ese=False` gives the pure VoVNetV1 block. State-dict
names follow vision-toolbox (`stem.<i>`, `stages.<i>.module_<j>.convs.<k>`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..base import Backbone
from ..registry import register_backbone
from .layers import ConvNormAct, EffectiveSqueezeExcitation, stem_and_stage_maps


class OSABlock(nn.Module):
    """One-Shot Aggregation block (optionally with eSE and an identity shortcut)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        num_layers: int,
        out_channels: int,
        ese: bool = True,
        residual: bool = True,
    ):
        super().__init__()
        self.convs = nn.ModuleList(
            ConvNormAct(in_channels if i == 0 else mid_channels, mid_channels, 3) for i in range(num_layers)
        )
        self.out_conv = ConvNormAct(in_channels + num_layers * mid_channels, out_channels, 1)
        self.ese = EffectiveSqueezeExcitation(out_channels) if ese else None
        self.residual = residual and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for conv in self.convs:
            outputs.append(conv(outputs[-1]))
        out = self.out_conv(torch.cat(outputs, dim=1))
        if self.ese is not None:
            out = self.ese(out)
        return out + x if self.residual else out


@dataclass(frozen=True)
class VoVNetStage:
    """One stage: `num_blocks` OSA blocks of `num_layers` convs of `mid_channels`, `out_channels` out."""

    num_blocks: int
    mid_channels: int
    num_layers: int
    out_channels: int


class VoVNet(Backbone):
    """VoVNet: 3-conv stem (stride 2) and four max-pool + OSA stages; maps at strides 2..32.

    Args:
        stages: the four stage settings.
        stem_channels: output width of the stem (its first two convs have half of it).
        ese: eSE in every OSA block (VoVNetV2).
        residual: identity shortcut in OSA blocks whose input and output widths match.
    """

    def __init__(
        self,
        stages: Sequence[VoVNetStage],
        stem_channels: int = 128,
        ese: bool = True,
        residual: bool = True,
    ):
        super().__init__()
        if len(stages) != 4:
            raise ValueError(f"VoVNet needs 4 stages, got {len(stages)}")
        self.out_channels_list = (stem_channels, *(s.out_channels for s in stages))
        self.stride = 32
        half = stem_channels // 2
        self.stem = nn.Sequential(
            ConvNormAct(3, half, 3, stride=2),
            ConvNormAct(half, half, 3),
            ConvNormAct(half, stem_channels, 3),
        )
        self.stages = nn.ModuleList()
        in_channels = stem_channels
        for setting in stages:
            stage = nn.Sequential()
            stage.add_module("max_pool", nn.MaxPool2d(3, stride=2, padding=1))
            for j in range(setting.num_blocks):
                block = OSABlock(
                    in_channels, setting.mid_channels, setting.num_layers, setting.out_channels, ese, residual
                )
                stage.add_module(f"module_{j}", block)
                in_channels = setting.out_channels
            self.stages.append(stage)

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stem_and_stage_maps(self, x, self.stages, keep_stem=True)


# Blocks per stage and convs per block of each depth (vision-toolbox / VoVNet papers).
VOVNET_DEPTHS = {
    19: ((1, 1, 1, 1), 3),
    27: ((1, 1, 1, 1), 5),
    39: ((1, 1, 2, 2), 5),
    57: ((1, 1, 4, 3), 5),
    99: ((1, 3, 9, 3), 5),
}
SLIM_WIDTHS = ((64, 80, 96, 112), (128, 256, 384, 512))
FULL_WIDTHS = ((128, 160, 192, 224), (256, 512, 768, 1024))


def vovnet_stages(depth: int, slim: bool) -> list[VoVNetStage]:
    """Stage settings of VoVNet-`depth` (slim: the narrow widths of VoVNet-19/27-slim)."""
    if depth not in VOVNET_DEPTHS:
        raise ValueError(f"VoVNet depth must be one of {sorted(VOVNET_DEPTHS)}, got {depth}")
    blocks, layers = VOVNET_DEPTHS[depth]
    mids, outs = SLIM_WIDTHS if slim else FULL_WIDTHS
    return [VoVNetStage(n, mid, layers, out) for n, mid, out in zip(blocks, mids, outs)]


def _vovnet(depth: int, slim: bool, ese: bool, pretrained: str | None, kwargs: dict) -> VoVNet:
    settings = {"ese": ese, **kwargs}
    model = VoVNet(vovnet_stages(depth, slim), **settings)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model


@register_backbone()
def vovnet27_slim(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-27-slim (V1 widths, residual, no eSE): 3.01M parameters."""
    return _vovnet(27, True, False, pretrained, kwargs)


@register_backbone()
def vovnet39(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-39 (V1, residual, no eSE): 21.58M parameters."""
    return _vovnet(39, False, False, pretrained, kwargs)


@register_backbone()
def vovnet57(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-57 (V1, residual, no eSE): 35.62M parameters."""
    return _vovnet(57, False, False, pretrained, kwargs)


@register_backbone()
def vovnet19_slim_ese(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-19-slim with eSE (V2): 2.68M parameters."""
    return _vovnet(19, True, True, pretrained, kwargs)


@register_backbone()
def vovnet19_ese(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-19 with eSE (V2): 10.18M parameters."""
    return _vovnet(19, False, True, pretrained, kwargs)


@register_backbone()
def vovnet39_ese(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-39 with eSE (V2): 25.18M parameters."""
    return _vovnet(39, False, True, pretrained, kwargs)


@register_backbone()
def vovnet57_ese(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-57 with eSE (V2): 41.45M parameters."""
    return _vovnet(57, False, True, pretrained, kwargs)


@register_backbone()
def vovnet99_ese(pretrained: str | None = None, **kwargs) -> VoVNet:
    """VoVNet-99 with eSE (V2): 69.52M parameters."""
    return _vovnet(99, False, True, pretrained, kwargs)
