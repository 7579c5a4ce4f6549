"""Random inputs of the op tests: boxes and scores, feature maps, RoIs."""

from __future__ import annotations

import torch
from torch import Tensor


def random_rois(
    num: int, batch: int, image_h: float, image_w: float, seed: int, dtype=torch.float64
) -> Tensor:
    """[num, 5] rois in image pixels: varied sizes, some crossing the image border."""
    g = torch.Generator().manual_seed(seed)
    size = torch.rand(num, 2, generator=g) * torch.tensor([image_w, image_h]) * 0.7 + 1
    centre = torch.rand(num, 2, generator=g) * torch.tensor([image_w, image_h]) * 1.1 - 0.05 * (
        torch.tensor([image_w, image_h])
    )
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    index = torch.randint(0, batch, (num, 1), generator=g).to(boxes.dtype)
    return torch.cat([index, boxes], dim=1).to(dtype)


def random_map(shape: tuple[int, ...], seed: int, dtype=torch.float64) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def clustered_boxes(n: int, seed: int, dtype=torch.float64, clusters: int = 0):
    """RPN-like boxes: jittered copies around a few centres, so many pairs overlap."""
    g = torch.Generator().manual_seed(seed)
    clusters = clusters or max(n // 20, 1)
    centre = torch.rand(clusters, 2, generator=g) * 500
    size = 20 + torch.rand(clusters, 2, generator=g) * 150
    pick = torch.randint(0, clusters, (n,), generator=g)
    xy = centre[pick] + torch.randn(n, 2, generator=g) * size[pick] * 0.2
    wh = size[pick] * torch.exp(torch.randn(n, 2, generator=g) * 0.2)
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], dim=1).clamp(min=0)
    scores = torch.rand(n, generator=g)
    return boxes.to(dtype), scores.to(dtype)
