"""Semantic FPN (Panoptic FPN's semantic branch, https://arxiv.org/abs/1901.02446).

An FPN, then every level is brought to the finest level's resolution by a chain of
(3x3 ConvNormAct, 2x bilinear upsampling) stages, one per factor of 2 (the finest level
gets one conv and no upsampling), and the results are summed into one map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..backbones.toolbox.layers import ConvNormAct
from .base import Neck, resize_to
from .fpn import FPN


class SemanticFPN(Neck):
    """One output: the merged pyramid at the finest input's stride, `out_channels` wide.

    Args:
        in_channels_list: widths of the input maps, finest first.
        out_channels: width of the merged output (128 in the paper).
        fpn_channels: width of the inner FPN (256 in the paper).
        fusion, interpolation: of the inner FPN.
        norm: norm of every conv ("GN" is the paper's choice; BN by default as the toolbox).
    """

    def __init__(
        self,
        in_channels_list: Sequence[int],
        out_channels: int = 128,
        fpn_channels: int = 256,
        fusion: str = "sum",
        interpolation: str = "nearest",
        norm: str | None = "BN",
    ):
        super().__init__(in_channels_list, out_channels)
        self.fpn = FPN(self.in_channels_list, fpn_channels, fusion, interpolation, norm)
        # scale_heads[i]: max(i, 1) convs; all but the finest level upsample after each conv.
        self.scale_heads = nn.ModuleList(
            nn.ModuleList(
                ConvNormAct(fpn_channels if j == 0 else out_channels, out_channels, 3, norm=norm)
                for j in range(max(i, 1))
            )
            for i in range(len(self.in_channels_list))
        )
        self.num_outputs = 1

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self.check_inputs(maps)
        pyramid = self.fpn(maps)
        merged = None
        for level, (x, convs) in enumerate(zip(pyramid, self.scale_heads)):
            for j, conv in enumerate(convs):
                x = conv(x)
                if level > 0:
                    # Up one level at a time, to that level's exact size.
                    x = resize_to(x, pyramid[level - 1 - j], "bilinear")
            merged = x if merged is None else merged + x
        return [merged]
