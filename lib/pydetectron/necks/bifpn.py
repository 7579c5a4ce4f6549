"""BiFPN (EfficientDet, https://arxiv.org/abs/1911.09070): repeated top-down + bottom-up layers.

Inputs go through 1x1 laterals to `out_channels`; `num_extra_levels` coarser levels are
made from the coarsest lateral by stride-2 max pools *before* the layers, so they take part
in the fusion (EfficientDet's P6, P7). Each layer, for levels 0 (finest) .. L-1:

    td[L-1]  = x[L-1]
    td[i]    = conv(fuse(x[i], up(td[i+1])))                          i = L-2 .. 0
    out[0]   = td[0]
    out[i]   = conv(fuse(x[i], td[i], down(out[i-1])))                i = 1 .. L-2
    out[L-1] = conv(fuse(x[L-1], down(out[L-2])))

`fuse` is a plain sum, or with `weighted_fusion` EfficientDet's fast normalised fusion
sum_j relu(w_j) x_j / (eps + sum_j relu(w_j)) with learnt w (initialised to 1). `up` is
nearest resampling to the finer size, `down` a 3x3 stride-2 max pool. `conv` is a 3x3
ConvNormAct, or depthwise-separable with `separable=True` (EfficientDet's choice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.toolbox.layers import ConvNormAct, SeparableConvNormAct
from .base import Neck, lateral_conv, resize_to


class FusionNode(nn.Module):
    """Fuse same-size maps (sum or fast normalised weighted sum), then one conv."""

    def __init__(
        self, channels: int, num_inputs: int, weighted: bool, separable: bool, norm: str | None, eps: float
    ):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(num_inputs)) if weighted else None
        self.eps = eps
        conv = SeparableConvNormAct if separable else ConvNormAct
        self.conv = conv(channels, channels, 3, norm=norm)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.weights is None:
            fused = inputs[0]
            for x in inputs[1:]:
                fused = fused + x
        else:
            w = F.relu(self.weights)
            w = w / (w.sum() + self.eps)
            fused = inputs[0] * w[0]
            for i in range(1, len(inputs)):
                fused = fused + inputs[i] * w[i]
        return self.conv(fused)


class BiFPNLayer(nn.Module):
    """One bidirectional layer over `num_levels` maps of `channels` channels."""

    def __init__(self, num_levels: int, channels: int, weighted: bool, separable: bool, norm: str | None, eps: float):
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"BiFPN needs at least 2 levels, got {num_levels}")
        self.top_down_nodes = nn.ModuleList(
            FusionNode(channels, 2, weighted, separable, norm, eps) for _ in range(num_levels - 1)
        )
        self.bottom_up_nodes = nn.ModuleList(
            FusionNode(channels, 3 if i < num_levels - 1 else 2, weighted, separable, norm, eps)
            for i in range(1, num_levels)
        )

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = len(x)
        td = list(x)
        for i in range(levels - 2, -1, -1):
            td[i] = self.top_down_nodes[i]([x[i], resize_to(td[i + 1], x[i])])
        out = [td[0]]
        for i in range(1, levels):
            down = resize_to(F.max_pool2d(out[-1], kernel_size=3, stride=2, padding=1), x[i])
            inputs = [x[i], td[i], down] if i < levels - 1 else [x[i], down]
            out.append(self.bottom_up_nodes[i - 1](inputs))
        return out


class BiFPN(Neck):
    """Repeated BiFPN layers; output i has input i's stride, extra levels double it.

    Args:
        in_channels_list: widths of the input maps, finest first.
        out_channels: width of every output.
        num_layers: how many BiFPN layers are stacked.
        weighted_fusion: EfficientDet's fast normalised weighted fusion instead of a sum.
        separable: depthwise-separable convs in the fusion nodes.
        norm: norm of the fusion convs (a `pydetectron.nn.make_norm` kind, or None).
        num_extra_levels: coarser levels made by max pooling the coarsest lateral.
        eps: the fast fusion's epsilon.
    """

    def __init__(
        self,
        in_channels_list: Sequence[int],
        out_channels: int = 64,
        num_layers: int = 1,
        weighted_fusion: bool = False,
        separable: bool = False,
        norm: str | None = "BN",
        num_extra_levels: int = 0,
        eps: float = 1e-4,
    ):
        super().__init__(in_channels_list, out_channels)
        if num_layers < 1:
            raise ValueError(f"BiFPN: num_layers must be >= 1, got {num_layers}")
        if num_extra_levels < 0:
            raise ValueError(f"BiFPN: num_extra_levels must be >= 0, got {num_extra_levels}")
        self.laterals = nn.ModuleList(lateral_conv(c, out_channels) for c in self.in_channels_list)
        self.num_extra_levels = num_extra_levels
        self.num_outputs = len(self.in_channels_list) + num_extra_levels
        self.layers = nn.ModuleList(
            BiFPNLayer(self.num_outputs, out_channels, weighted_fusion, separable, norm, eps)
            for _ in range(num_layers)
        )

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        self.check_inputs(maps)
        x = [conv(m) for conv, m in zip(self.laterals, maps)]
        for _ in range(self.num_extra_levels):
            x.append(F.max_pool2d(x[-1], kernel_size=3, stride=2, padding=1))
        for layer in self.layers:
            x = layer(x)
        return x
