"""Box heads keyed by Detectron's FAST_RCNN.ROI_BOX_HEAD names, with their RoI pooler.

A builder takes (cfg, dim_in, spatial_scales) and returns (pooler, head): the pooler runs
the configured RoI transform at FAST_RCNN.ROI_XFORM_RESOLUTION, the head maps pooled
features to a vector of `head.dim_out` values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron.nn import GroupNormSettings, WeightMapping, add_prefix

from ..backbones import res5_head_stage, resnet_block_kwargs_from_cfg
from ..registry import Registry, strip_detectron_add_prefix
from .box_heads import ConvFCHead, MLPHead
from .roi_pooler import RoIPooler

BOX_HEADS = Registry("FAST_RCNN.ROI_BOX_HEAD", normalize=strip_detectron_add_prefix)


class ResNetRoIConv5Head(nn.Module):
    """`ResNet_roi_conv5_head` (C4 models): res5 on pooled RoIs, then 7x7 average pooling."""

    def __init__(self, res5: nn.Module) -> None:
        super().__init__()
        self.res5 = res5
        self.dim_out = res5.dim_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Detectron's res5_pool is a 7x7 average over the 7x7 res5 output: a global mean
        return F.adaptive_avg_pool2d(self.res5(x), 1).flatten(1)

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping, orphans = self.res5.detectron_weight_mapping()
        return add_prefix(mapping, "res5"), orphans


def build_roi_pooler(cfg, spatial_scales: Sequence[float]) -> RoIPooler:
    """The RoI transform of FAST_RCNN.* (and FPN.ROI_* for several levels)."""
    fast = cfg.FAST_RCNN
    return RoIPooler(
        output_size=fast.ROI_XFORM_RESOLUTION,
        spatial_scales=spatial_scales,
        method=fast.ROI_XFORM_METHOD,
        sampling_ratio=fast.ROI_XFORM_SAMPLING_RATIO,
        aligned=fast.ROI_XFORM_ALIGNED,
        crop_with_max_pool=cfg.CROP_RESIZE_WITH_MAX_POOL,
        canonical_scale=cfg.FPN.ROI_CANONICAL_SCALE,
        canonical_level=cfg.FPN.ROI_CANONICAL_LEVEL,
        level_mapping=cfg.FPN.ROI_LEVEL_MAPPING,
    )


@BOX_HEADS.register("fast_rcnn_heads.roi_2mlp_head")
def build_roi_2mlp_head(cfg, dim_in: int, spatial_scales: Sequence[float]):
    head = MLPHead(dim_in, cfg.FAST_RCNN.ROI_XFORM_RESOLUTION, cfg.FAST_RCNN.MLP_HEAD_DIM)
    return build_roi_pooler(cfg, spatial_scales), head


def _conv_fc_head(cfg, dim_in: int, use_gn: bool) -> ConvFCHead:
    fast = cfg.FAST_RCNN
    gn = GroupNormSettings.from_cfg(cfg)
    return ConvFCHead(
        dim_in,
        fast.ROI_XFORM_RESOLUTION,
        num_convs=fast.NUM_STACKED_CONVS,
        conv_dim=fast.CONV_HEAD_DIM,
        hidden_dim=fast.MLP_HEAD_DIM,
        use_gn=use_gn,
        gn_dim_per_gp=gn.dim_per_gp,
        gn_num_groups=gn.num_groups,
        gn_eps=gn.eps,
    )


@BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_head")
def build_roi_xconv1fc_head(cfg, dim_in: int, spatial_scales: Sequence[float]):
    return build_roi_pooler(cfg, spatial_scales), _conv_fc_head(cfg, dim_in, use_gn=False)


@BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_gn_head")
def build_roi_xconv1fc_gn_head(cfg, dim_in: int, spatial_scales: Sequence[float]):
    return build_roi_pooler(cfg, spatial_scales), _conv_fc_head(cfg, dim_in, use_gn=True)


@BOX_HEADS.register("ResNet.ResNet_roi_conv5_head")
def build_resnet_roi_conv5_head(cfg, dim_in: int, spatial_scales: Sequence[float]):
    resolution = cfg.FAST_RCNN.ROI_XFORM_RESOLUTION
    res5 = res5_head_stage(
        dim_in=dim_in,
        stride_init=resolution // 7,
        dilation=1,
        **resnet_block_kwargs_from_cfg(cfg),
    )
    return build_roi_pooler(cfg, spatial_scales), ResNetRoIConv5Head(res5)
