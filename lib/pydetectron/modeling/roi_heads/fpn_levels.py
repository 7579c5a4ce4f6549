"""Which FPN level an RoI is pooled from (FPN paper, eqn. 1).

Two conventions differ only in details, each an explicit argument:
- Detectron: area with +1 widths, eps inside the log:
  floor(k0 + log2(sqrt(area) / s0 + 1e-6));
- torchvision's LevelMapper: area without +1, eps outside the log:
  floor(k0 + log2(sqrt(area) / s0) + 1e-6).
"""

from __future__ import annotations

import torch

from pydetectron.structures.boxes import box_area


def map_rois_to_fpn_levels(
    boxes: torch.Tensor,
    k_min: int,
    k_max: int,
    canonical_scale: float = 224,
    canonical_level: int = 4,
    plus_one: bool = True,
    eps: float = 1e-6,
    eps_inside_log: bool = True,
) -> torch.Tensor:
    """FPN level (k_min..k_max, int64 [R]) for each box [R, 4] (x1, y1, x2, y2).

    Computed in the boxes' dtype, as both references do. `plus_one` and
    `eps_inside_log` True give Detectron's map_rois_to_fpn_levels; both False give
    torchvision's LevelMapper (which returns level - k_min).
    """
    if k_min > k_max:
        raise ValueError(f"k_min ({k_min}) must not exceed k_max ({k_max})")
    scale = torch.sqrt(box_area(boxes, plus_one=plus_one))
    if eps_inside_log:
        levels = torch.floor(canonical_level + torch.log2(scale / canonical_scale + eps))
    else:
        levels = torch.floor(canonical_level + torch.log2(scale / canonical_scale) + eps)
    return levels.clamp(min=k_min, max=k_max).to(torch.int64)
