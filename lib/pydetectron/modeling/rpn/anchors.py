"""Anchor generation in Detectron's and torchvision's conventions.

Cell anchors are the A boxes placed at one feature-map location; `grid_anchors` tiles
them over an H x W map with the level's stride. Order is location-major, then anchor
(aspect ratio major, size minor), which is the order both Detectron and torchvision use
for the RPN outputs and torchvision for RetinaNet; Detectron's RetinaNet orders a cell's
anchors size (octave) major, aspect ratio minor (`cell_order='size_major'`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def detectron_cell_anchors(
    stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]
) -> torch.Tensor:
    """Detectron's generate_anchors: [A, 4] float64 with its legacy rounding.

    A stride x stride reference box [0, 0, stride-1, stride-1] is reshaped to each aspect
    ratio keeping its area (widths rounded half-to-even as numpy does), then scaled to each
    size; corners are ctr -/+ (w - 1) / 2.
    """
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    base = float(stride)
    ctr = 0.5 * (base - 1)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float64)
    scales = torch.as_tensor(sizes, dtype=torch.float64) / base
    area = base * base
    ratio_ws = torch.round(torch.sqrt(area / ratios))
    ratio_hs = torch.round(ratio_ws * ratios)
    ws = (ratio_ws[:, None] * scales[None, :]).reshape(-1)
    hs = (ratio_hs[:, None] * scales[None, :]).reshape(-1)
    return torch.stack(
        (ctr - 0.5 * (ws - 1), ctr - 0.5 * (hs - 1), ctr + 0.5 * (ws - 1), ctr + 0.5 * (hs - 1)),
        dim=1,
    )


def torchvision_cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """torchvision's AnchorGenerator cell anchors: zero-centred, rounded, [A, 4] float64."""
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float64)
    scales = torch.as_tensor(sizes, dtype=torch.float64)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1.0 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return torch.round(torch.stack((-ws, -hs, ws, hs), dim=1) / 2)


def grid_anchors(
    cell_anchors: torch.Tensor, height: int, width: int, stride: int | tuple[int, int]
) -> torch.Tensor:
    """Tile [A, 4] cell anchors over an height x width map: [H * W * A, 4].

    `stride` is one number or (stride_y, stride_x).
    """
    device, dtype = cell_anchors.device, cell_anchors.dtype
    stride_y, stride_x = stride if isinstance(stride, tuple) else (stride, stride)
    shift_x = torch.arange(width, device=device, dtype=dtype) * stride_x
    shift_y = torch.arange(height, device=device, dtype=dtype) * stride_y
    sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    shifts = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 1, 4)
    return (shifts + cell_anchors[None]).reshape(-1, 4)

CELL_ORDERS = ("ratio_major", "size_major")


class AnchorGenerator(nn.Module):
    """Anchors for a list of feature levels, cached per (level, size, device, dtype).

    `strides[i]`, `sizes[i]` describe level i; every level uses the same aspect ratios.
    `cell_order` is 'ratio_major' (a cell's anchors by aspect ratio, then size) or
    'size_major' (by size, then aspect ratio: Detectron's RetinaNet).
    `convention` is 'detectron' (legacy generate_anchors, placed every `strides[i]` pixels)
    or 'torchvision' (torchvision's cell anchors, placed every `padded image size // map
    size` pixels per axis, as its AnchorGenerator does: that differs from `strides[i]` when
    the padded size is not a multiple of the level's stride, e.g. P6 of an 800-pixel input).
    """

    def __init__(
        self,
        strides: Sequence[int],
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        convention: str = "detectron",
        cell_order: str = "ratio_major",
    ) -> None:
        super().__init__()
        if len(strides) != len(sizes):
            raise ValueError(f"strides ({len(strides)}) and sizes ({len(sizes)}) must have one entry per level")
        if convention not in ("detectron", "torchvision"):
            raise ValueError(f"convention must be 'detectron' or 'torchvision', got {convention!r}")
        if cell_order not in CELL_ORDERS:
            raise ValueError(f"cell_order must be one of {CELL_ORDERS}, got {cell_order!r}")
        self.strides = [int(s) for s in strides]
        self.convention = convention

        def cell(stride: int, level_sizes: Sequence[float]) -> torch.Tensor:
            if convention == "detectron":
                return detectron_cell_anchors(stride, level_sizes, aspect_ratios)
            return torchvision_cell_anchors(level_sizes, aspect_ratios)

        cells = [
            cell(s, z) if cell_order == "ratio_major" else torch.cat([cell(s, (size,)) for size in z])
            for s, z in zip(self.strides, sizes)
        ]
        self.num_anchors = [c.shape[0] for c in cells]
        self._cells = cells
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(
        self,
        feature_shapes: Sequence[tuple[int, int]],
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        image_size: tuple[int, int] | None = None,
    ) -> list[torch.Tensor]:
        """Anchors [H_i * W_i * A_i, 4] for each level's (H_i, W_i); `image_size` is the padded
        input (H, W), which the torchvision convention derives its strides from."""
        if len(feature_shapes) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} feature levels, got {len(feature_shapes)}")
        out = []
        for level, (h, w) in enumerate(feature_shapes):
            stride: int | tuple[int, int] = self.strides[level]
            if self.convention == "torchvision" and image_size is not None:
                stride = (int(image_size[0]) // int(h), int(image_size[1]) // int(w))
            key = (level, int(h), int(w), stride, str(device), dtype)
            if key not in self._cache:
                if len(self._cache) > 64:
                    self._cache.clear()
                anchors = grid_anchors(self._cells[level], int(h), int(w), stride)
                self._cache[key] = anchors.to(device=device, dtype=dtype)
            out.append(self._cache[key])
        return out
