"""Detectron's BilinearInterpolation: a fixed (not trained) transposed conv that upsamples by
an even factor with a bilinear kernel, one channel to itself."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bilinear_kernel(size: int) -> torch.Tensor:
    """The [size, size] bilinear upsampling filter Detectron builds (upsample_filt)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = torch.arange(size, dtype=torch.float64)
    line = 1 - (grid - center).abs() / factor
    return (line[:, None] * line[None, :]).to(torch.float32)


class BilinearUpsample(nn.Module):
    """Upsample [N, C, H, W] by `up_scale` (even) with Detectron's fixed bilinear ConvTranspose
    (kernel 2 * up_scale, stride up_scale, padding up_scale / 2).

    Detectron stores its weights as parameters that are never updated (`<blob>_w`, `<blob>_b`);
    here they are a non-persistent buffer, and `blob_names` lists them as knowingly unused.
    """

    def __init__(self, channels: int, up_scale: int, blob: str = "") -> None:
        super().__init__()
        if up_scale < 2 or up_scale % 2 != 0:
            raise ValueError(f"BilinearUpsample: up_scale must be an even number >= 2, got {up_scale}")
        self.channels = channels
        self.up_scale = up_scale
        self.blob = blob
        size = 2 * up_scale
        self.register_buffer("kernel", bilinear_kernel(size)[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.up_scale // 2
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=self.up_scale, padding=pad, groups=self.channels)

    def blob_names(self) -> list[str]:
        return [self.blob + "_w", self.blob + "_b"] if self.blob else []

    def extra_repr(self) -> str:
        return f"{self.channels}, up_scale={self.up_scale}"
