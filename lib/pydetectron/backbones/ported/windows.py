"""Non-overlapping window partitioning of NHWC maps (Swin, ViTDet), padding to whole windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """[B, H, W, C] -> ([B * nWindows, wh, ww, C], (Hp, Wp)); zero-pads bottom/right to whole windows."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window[0], (-w) % window[1]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window[0], window[0], wp // window[1], window[1], c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window[0], window[1], c)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: tuple[int, int], padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: [B * nWindows, wh, ww, C] -> [B, H, W, C], padding removed."""
    hp, wp = padded
    c = windows.shape[-1]
    x = windows.view(-1, hp // window[0], wp // window[1], window[0], window[1], c)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, hp, wp, c)
    if (hp, wp) != tuple(size):
        x = x[:, : size[0], : size[1]]
    return x.contiguous()
