"""The vision-toolbox FPN (https://arxiv.org/abs/1612.03144) for any backbone's maps.

Laterals are plain 1x1 convs (no norm, no activation); the 3x3 output conv (with norm and
ReLU) sits inside the top-down path, so each level is refined before it is passed down:

    P5 = lateral5(C5)
    P4 = out_conv4(fuse(lateral4(C4), up(P5)))
    P3 = out_conv3(fuse(lateral3(C3), up(P4)))

`fusion` "sum" adds the two maps, "concat" stacks them (the output conv then takes twice
the channels). `up` is nearest (or `interpolation`) resampling to the finer map's size.
This is a different module from Detectron's FPN in pydetectron.modeling.necks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..backbones.toolbox.layers import ConvNormAct
from .base import ExtraLevels, Neck, check_fusion, fuse, lateral_conv, resize_to


class FPN(Neck):
    """Top-down feature pyramid; output i has input i's stride and `out_channels` channels.

    Args:
        in_channels_list: widths of the input maps, finest first.
        out_channels: width of every output.
        fusion: "sum" or "concat" of the lateral and the upsampled coarser level.
        interpolation: F.interpolate mode of the top-down upsampling.
        norm: norm of the output convs (a `pydetectron.nn.make_norm` kind, or None).
        num_extra_levels: outputs added above the coarsest one (stride doubling each).
        extra_mode: "maxpool" (kernel 1, stride 2 on the last output) or "conv".
    """

    def __init__(
        self,
        in_channels_list: Sequence[int],
        out_channels: int = 256,
        fusion: str = "sum",
        interpolation: str = "nearest",
        norm: str | None = "BN",
        num_extra_levels: int = 0,
        extra_mode: str = "maxpool",
    ):
        super().__init__(in_channels_list, out_channels)
        self.fusion = check_fusion(fusion, "FPN")
        self.interpolation = interpolation
        fused = out_channels * (2 if fusion == "concat" else 1)
        self.lateral_convs = nn.ModuleList(lateral_conv(c, out_channels) for c in self.in_channels_list)
        # output_convs[i] refines level i; the coarsest level has none.
        self.output_convs = nn.ModuleList(
            ConvNormAct(fused, out_channels, 3, norm=norm) for _ in self.in_channels_list[:-1]
        )
        self.extra = ExtraLevels(num_extra_levels, out_channels, extra_mode, norm=norm)
        self.num_outputs = len(self.in_channels_list) + num_extra_levels

    def top_down(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The pyramid without extra levels."""
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, maps)]
        outputs = [laterals[-1]]
        for i in range(len(laterals) - 2, -1, -1):
            coarser = resize_to(outputs[0], laterals[i], self.interpolation)
            outputs.insert(0, self.output_convs[i](fuse([laterals[i], coarser], self.fusion)))
        return outputs

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self.check_inputs(maps)
        outputs = self.top_down(maps)
        return outputs + self.extra(outputs[-1])
