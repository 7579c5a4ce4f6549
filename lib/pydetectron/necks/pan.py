"""PAN (https://arxiv.org/abs/1803.01534): an FPN followed by a bottom-up path.

The bottom-up path starts from the finest FPN output and goes up with stride-2 3x3
convs, so the coarsest outputs see the finest inputs through a short path:

    N2 = P2
    N3 = out_conv3(fuse(P3, down2(N2)))      down: 3x3 stride-2 ConvNormAct
    N4 = out_conv4(fuse(P4, down3(N3)))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..backbones.toolbox.layers import ConvNormAct
from .base import ExtraLevels, Neck, check_fusion, fuse, resize_to
from .fpn import FPN


class PAN(Neck):
    """FPN top-down path, then a bottom-up path; output i has input i's stride.

    Args:
        in_channels_list: widths of the input maps, finest first.
        out_channels: width of every output.
        fusion: "sum" or "concat", in both paths.
        interpolation: F.interpolate mode of the top-down upsampling.
        norm: norm of every 3x3 conv (a `pydetectron.nn.make_norm` kind, or None).
        num_extra_levels, extra_mode: extra outputs above the coarsest one, as in FPN.
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
        self.fusion = check_fusion(fusion, "PAN")
        self.fpn = FPN(self.in_channels_list, out_channels, fusion, interpolation, norm)
        fused = out_channels * (2 if fusion == "concat" else 1)
        levels = len(self.in_channels_list)
        # downsample_convs[i] takes N_i to level i + 1; bottom_up_convs[i] refines N_{i+1}.
        self.downsample_convs = nn.ModuleList(
            ConvNormAct(out_channels, out_channels, 3, stride=2, norm=norm) for _ in range(levels - 1)
        )
        self.bottom_up_convs = nn.ModuleList(
            ConvNormAct(fused, out_channels, 3, norm=norm) for _ in range(levels - 1)
        )
        self.extra = ExtraLevels(num_extra_levels, out_channels, extra_mode, norm=norm)
        self.num_outputs = levels + num_extra_levels

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self.check_inputs(maps)
        top_down = self.fpn.top_down(maps)
        outputs = [top_down[0]]
        for i, (down, refine) in enumerate(zip(self.downsample_convs, self.bottom_up_convs)):
            lower = resize_to(down(outputs[-1]), top_down[i + 1])
            outputs.append(refine(fuse([top_down[i + 1], lower], self.fusion)))
        return outputs + self.extra(outputs[-1])
