"""RoI feature extraction (Detectron's RoI transform) over one or several feature levels.

With several levels (FPN) each RoI is pooled from the level its size maps to
(`map_rois_to_fpn_levels`), and the results come back in the RoIs' order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron import ops

from ..levels import level_of_stride
from .fpn_levels import map_rois_to_fpn_levels

ROI_XFORM_METHODS = ("RoIAlign", "RoIPoolF", "RoICrop")
# 'detectron': +1 areas, eps inside the log; 'torchvision': LevelMapper's rule
LEVEL_MAPPINGS = ("detectron", "torchvision")


class RoIPooler(nn.Module):
    """Pool [R, C, S, S] features for RoIs [R, 5] (batch index, x1, y1, x2, y2).

    `strides[i]` is the stride of `features[i]` in forward; with several maps each has a
    pyramid level (stride 2**level) and every RoI is pooled from the level its size maps to.
    """

    def __init__(
        self,
        output_size: int,
        strides: Sequence[int],
        method: str = "RoIAlign",
        sampling_ratio: int = 0,
        aligned: bool = False,
        crop_with_max_pool: bool = True,
        canonical_scale: float = 224.0,
        canonical_level: int = 4,
        level_mapping: str = "detectron",
    ) -> None:
        super().__init__()
        if method not in ROI_XFORM_METHODS:
            raise ValueError(f"RoI transform method must be one of {ROI_XFORM_METHODS}, got {method!r}")
        if level_mapping not in LEVEL_MAPPINGS:
            raise ValueError(f"level mapping must be one of {LEVEL_MAPPINGS}, got {level_mapping!r}")
        self.output_size = int(output_size)
        self.strides = [int(s) for s in strides]
        self.spatial_scales = [1.0 / s for s in self.strides]
        self.levels = [level_of_stride(s) for s in self.strides] if len(self.strides) > 1 else []
        self.method = method
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.crop_with_max_pool = crop_with_max_pool
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.level_mapping = level_mapping

    @classmethod
    def from_cfg(cls, cfg, strides: Sequence[int], section: str = "FAST_RCNN") -> RoIPooler:
        """The RoI transform of `section`'s ROI_XFORM_* keys (FAST_RCNN, MRCNN or KRCNN) over maps
        of `strides`, with FPN.ROI_* for several levels."""
        node = cfg[section]
        return cls(
            output_size=node.ROI_XFORM_RESOLUTION,
            strides=strides,
            method=node.ROI_XFORM_METHOD,
            sampling_ratio=node.ROI_XFORM_SAMPLING_RATIO,
            aligned=cfg.FAST_RCNN.ROI_XFORM_ALIGNED,
            crop_with_max_pool=cfg.CROP_RESIZE_WITH_MAX_POOL,
            canonical_scale=cfg.FPN.ROI_CANONICAL_SCALE,
            canonical_level=cfg.FPN.ROI_CANONICAL_LEVEL,
            level_mapping=cfg.FPN.ROI_LEVEL_MAPPING,
        )

    def pool_level(self, feature: torch.Tensor, rois: torch.Tensor, scale: float) -> torch.Tensor:
        """Apply the configured RoI transform on one feature map."""
        size = self.output_size
        if self.method == "RoIAlign":
            return ops.roi_align(feature, rois, size, scale, self.sampling_ratio, self.aligned)
        if self.method == "RoIPoolF":
            return ops.roi_pool(feature, rois, size, scale)
        if self.crop_with_max_pool:
            return F.max_pool2d(ops.roi_crop(feature, rois, 2 * size, scale), kernel_size=2, stride=2)
        return ops.roi_crop(feature, rois, size, scale)

    def forward(self, features: Sequence[torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        if len(features) != len(self.spatial_scales):
            raise ValueError(f"RoIPooler expects {len(self.spatial_scales)} feature maps, got {len(features)}")
        rois = rois.to(features[0].dtype)
        if len(features) == 1:
            return self.pool_level(features[0], rois, self.spatial_scales[0])
        detectron = self.level_mapping == "detectron"
        levels = map_rois_to_fpn_levels(
            rois[:, 1:],
            min(self.levels),
            max(self.levels),
            self.canonical_scale,
            self.canonical_level,
            plus_one=detectron,
            eps_inside_log=detectron,
        )
        first = features[0]
        out = first.new_zeros((rois.shape[0], first.shape[1], self.output_size, self.output_size))
        for feature, scale, level in zip(features, self.spatial_scales, self.levels):
            index = torch.nonzero(levels == level, as_tuple=False).squeeze(1)
            if index.numel() > 0:
                out[index] = self.pool_level(feature, rois[index], scale).to(out.dtype)
        return out
