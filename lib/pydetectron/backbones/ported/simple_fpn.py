"""ViTDet's simple feature pyramid: strides 4, 8, 16, 32 from a plain ViT's single stride-16 map.

For each scale factor (default 4, 2, 1, 1/2 of the input map's resolution):
  4:   ConvTranspose 2x2/2 (C -> C/2), LayerNorm, GELU, ConvTranspose 2x2/2 (C/2 -> C/4)
  2:   ConvTranspose 2x2/2 (C -> C/2)
  1:   identity
  1/2: max-pool 2x2/2
then a 1x1 conv and a 3x3 conv to `out_channels`, each followed by a channel LayerNorm
(convs without bias, as `norm="LN"` in detectron2's ViTDet). Module names follow
detectron2 (`simfp_2` ... `simfp_5`, each conv's norm at `<conv>.norm`), so ViTDet neck
weights keep their names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .layers import LayerNorm2d

SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


class ConvNorm(nn.Conv2d):
    """A conv followed by its norm (detectron2's `Conv2d(..., norm=...)`; the norm lives at `.norm`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: bool):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm)
        self.norm = LayerNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class SimpleFeaturePyramid(nn.Module):
    """`forward(map) -> [maps]` finest first; `out_channels`, `strides` (for an input at `in_stride`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        scale_factors: Sequence[float] = SCALE_FACTORS,
        in_stride: int = 16,
        norm: bool = True,
    ):
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.scale_factors = tuple(float(s) for s in scale_factors)
        if list(self.scale_factors) != sorted(self.scale_factors, reverse=True):
            raise ValueError(f"scale_factors {self.scale_factors} must go from fine to coarse")
        self.strides = tuple(int(in_stride / s) for s in self.scale_factors)
        self.stage_names = []
        for scale in self.scale_factors:
            layers: list[nn.Module]
            dim = self.in_channels
            if scale == 4.0:
                if dim % 4:
                    raise ValueError(f"scale 4 needs in_channels divisible by 4, got {dim}")
                layers = [
                    nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
                    LayerNorm2d(dim // 2) if norm else nn.Identity(),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
                ]
                dim //= 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)]
                dim //= 2
            elif scale == 1.0:
                layers = []
            elif scale == 0.5:
                layers = [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                raise ValueError(f"scale factor {scale} is not one of {SCALE_FACTORS}")
            layers += [
                ConvNorm(dim, self.out_channels, 1, norm),
                ConvNorm(self.out_channels, self.out_channels, 3, norm),
            ]
            name = f"simfp_{int(math.log2(in_stride / scale))}"
            self.add_module(name, nn.Sequential(*layers))
            self.stage_names.append(name)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SimpleFeaturePyramid: expected [N, {self.in_channels}, H, W], got {tuple(x.shape)}")
        return [getattr(self, name)(x) for name in self.stage_names]
