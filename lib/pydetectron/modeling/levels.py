"""Feature-map shapes and pyramid-level arithmetic, in one place.

A conv body returns named maps (``{"res4": ...}``, ``{"p2": ..., "p6": ...}``) and
declares each one's channels and stride with ``output_shape()``. Everything that needs
a level (RPN anchors, RoI level mapping, FPN names) derives it here from the stride:
level k has stride 2**k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple


class ShapeSpec(NamedTuple):
    """Channels and stride (input pixels per map pixel) of one feature map."""

    channels: int
    stride: int


# Detectron assumes a backbone with 5 stride-2 reductions whose maps are levels 2..5.
LOWEST_BACKBONE_LEVEL = 2
HIGHEST_BACKBONE_LEVEL = 5


def level_of_stride(stride: int) -> int:
    """Pyramid level of a power-of-two stride (4 -> 2, 64 -> 6)."""
    level = round(math.log2(stride)) if stride > 0 else -1
    if stride <= 0 or 2**level != stride:
        raise ValueError(f"feature strides must be powers of two to have a pyramid level, got {stride}")
    return level


def pyramid_name(level: int) -> str:
    """Name of a pyramid map: level 2 -> 'p2'."""
    return f"p{level}"


def features_in_levels(shapes: Mapping[str, ShapeSpec], min_level: int, max_level: int) -> list[str]:
    """Names of the maps whose levels are exactly min_level..max_level, finest first.

    Raises ValueError naming the levels the body lacks.
    """
    by_level = {level_of_stride(spec.stride): name for name, spec in shapes.items()}
    wanted = list(range(min_level, max_level + 1))
    missing = [level for level in wanted if level not in by_level]
    if missing:
        have = {name: spec.stride for name, spec in shapes.items()}
        raise ValueError(
            f"levels {min_level}..{max_level} are needed but the body lacks level(s) {missing} "
            f"(strides {[2**k for k in missing]}); it has {have}"
        )
    return [by_level[level] for level in wanted]


def pooled_maps(
    shapes: Mapping[str, ShapeSpec], multilevel: bool, min_level: int, max_level: int, who: str
) -> list[str]:
    """Maps a head reads: levels min_level..max_level when `multilevel`, else the body's one map.

    `who` names the head in the error raised for a single-level head on a multi-map body.
    """
    if multilevel:
        return features_in_levels(shapes, min_level, max_level)
    if len(shapes) != 1:
        raise ValueError(
            f"{who} reads one feature map without FPN, but MODEL.CONV_BODY returns {list(shapes)}; "
            "set FPN.FPN_ON and the FPN.MULTILEVEL_* keys to use several levels"
        )
    return list(shapes)


def finest_first(shapes: Mapping[str, ShapeSpec]) -> list[str]:
    """Map names ordered by increasing stride."""
    return sorted(shapes, key=lambda name: shapes[name].stride)


def fpn_min_max_levels(cfg) -> tuple[int, int]:
    """Pyramid levels that the RPN and/or RoI heads need (Detectron's get_min_max_levels)."""
    fpn = cfg.FPN
    min_level, max_level = LOWEST_BACKBONE_LEVEL, HIGHEST_BACKBONE_LEVEL
    if fpn.MULTILEVEL_RPN and not fpn.MULTILEVEL_ROIS:
        min_level, max_level = fpn.RPN_MIN_LEVEL, fpn.RPN_MAX_LEVEL
    elif fpn.MULTILEVEL_ROIS and not fpn.MULTILEVEL_RPN:
        min_level, max_level = fpn.ROI_MIN_LEVEL, fpn.ROI_MAX_LEVEL
    elif fpn.MULTILEVEL_RPN and fpn.MULTILEVEL_ROIS:
        min_level = min(fpn.RPN_MIN_LEVEL, fpn.ROI_MIN_LEVEL)
        max_level = max(fpn.RPN_MAX_LEVEL, fpn.ROI_MAX_LEVEL)
    return int(min_level), int(max_level)
