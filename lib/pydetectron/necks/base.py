"""What every `pydetectron.necks` module shares: the list-in/list-out contract and its checks.

A neck takes a backbone's maps, finest first, and returns maps of `out_channels` channels,
finest first. Output i has the stride of input i; the `num_extra_levels` extra outputs
(if any) follow, each at twice the stride of the one before (`output_strides`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.toolbox.layers import ConvNormAct

EXTRA_LEVEL_MODES = ("maxpool", "conv")
FUSIONS = ("sum", "concat")


class Neck(nn.Module):
    """Base class: `in_channels_list`, `out_channels`, `num_outputs`, `output_strides()`."""

    in_channels_list: tuple[int, ...]
    out_channels: int
    num_outputs: int

    def __init__(self, in_channels_list: Sequence[int], out_channels: int):
        super().__init__()
        in_channels_list = tuple(int(c) for c in in_channels_list)
        if len(in_channels_list) < 1 or any(c <= 0 for c in in_channels_list):
            raise ValueError(f"{type(self).__name__}: in_channels_list must be positive widths, got {in_channels_list}")
        if int(out_channels) <= 0:
            raise ValueError(f"{type(self).__name__}: out_channels must be positive, got {out_channels}")
        self.in_channels_list = in_channels_list
        self.out_channels = int(out_channels)
        self.num_outputs = len(in_channels_list)

    def output_strides(self, input_strides: Sequence[int]) -> list[int]:
        """Stride of each output given the inputs' strides (finest first)."""
        if len(input_strides) != len(self.in_channels_list):
            raise ValueError(
                f"{type(self).__name__}: {len(input_strides)} input strides for {len(self.in_channels_list)} inputs"
            )
        strides = [int(s) for s in input_strides][: self.num_outputs]
        while len(strides) < self.num_outputs:
            strides.append(strides[-1] * 2)
        return strides

    def check_inputs(self, maps: Sequence[torch.Tensor]) -> None:
        """Raise a ValueError unless `maps` are 4-D maps with the widths of `in_channels_list`."""
        name = type(self).__name__
        if not isinstance(maps, list | tuple) or len(maps) != len(self.in_channels_list):
            count = len(maps) if isinstance(maps, list | tuple) else type(maps).__name__
            raise ValueError(f"{name}: expected a list of {len(self.in_channels_list)} maps, got {count}")
        for i, (x, channels) in enumerate(zip(maps, self.in_channels_list)):
            if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"{name}: input {i} should be [N, {channels}, H, W], got {shape}")


def resize_to(x: torch.Tensor, reference: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """`x` resampled to `reference`'s height and width (a no-op when they already match).

    Sizing to the neighbour map instead of a fixed 2x keeps odd input sizes working, where a
    stride-2 layer gives ceil(n / 2) and 2x upsampling would overshoot by one.
    """
    if x.shape[-2:] == reference.shape[-2:]:
        return x
    align = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(x, size=reference.shape[-2:], mode=mode, align_corners=align)


def fuse(inputs: list[torch.Tensor], fusion: str) -> torch.Tensor:
    """Sum or channel-concatenate maps of one size."""
    if fusion == "concat":
        return torch.cat(inputs, dim=1)
    out = inputs[0]
    for x in inputs[1:]:
        out = out + x
    return out


def check_fusion(fusion: str, who: str) -> str:
    if fusion not in FUSIONS:
        raise ValueError(f"{who}: fusion must be one of {FUSIONS}, got {fusion!r}")
    return fusion


def lateral_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 conv with bias, no norm or activation (FPN laterals), initialised as torchvision's FPN."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return conv


class ExtraLevels(nn.Module):
    """Outputs above the coarsest input, each at twice the stride of the previous one.

    "maxpool": max pool with kernel 1 and stride 2 (the FPN paper's / Detectron's P6);
    "conv": 3x3 stride-2 ConvNormAct (RetinaNet-style, but with norm and ReLU).
    """

    def __init__(self, num_levels: int, channels: int, mode: str = "maxpool", norm: str | None = "BN"):
        super().__init__()
        if num_levels < 0:
            raise ValueError(f"num_extra_levels must be >= 0, got {num_levels}")
        if mode not in EXTRA_LEVEL_MODES:
            raise ValueError(f"extra level mode must be one of {EXTRA_LEVEL_MODES}, got {mode!r}")
        self.num_levels = num_levels
        self.mode = mode
        self.convs = nn.ModuleList(
            ConvNormAct(channels, channels, 3, stride=2, norm=norm) for _ in range(num_levels if mode == "conv" else 0)
        )

    def forward(self, last: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i in range(self.num_levels):
            last = self.convs[i](last) if self.mode == "conv" else F.max_pool2d(last, kernel_size=1, stride=2)
            outputs.append(last)
        return outputs
