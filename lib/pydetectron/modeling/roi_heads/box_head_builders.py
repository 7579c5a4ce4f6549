"""Box heads keyed by Detectron's FAST_RCNN.ROI_BOX_HEAD names, with their RoI pooler.

A builder takes (cfg, dim_in, strides) and returns (pooler, head): the pooler runs the
configured RoI transform at FAST_RCNN.ROI_XFORM_RESOLUTION over maps of those strides, the
head maps pooled features to a vector of `head.dim_out` values.
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


def _box_head_key(name: str) -> str:
    """Detectron names, with or without `add_`; early Detectron configs call the module `head_builder`."""
    key = strip_detectron_add_prefix(name)
    return "fast_rcnn_heads." + key[len("head_builder.") :] if key.startswith("head_builder.") else key


BOX_HEADS = Registry("FAST_RCNN.ROI_BOX_HEAD", normalize=_box_head_key)


class ResNetRoIConv5Head(nn.Module):
    """`ResNet_roi_conv5_head` (C4 models): res5 on pooled RoIs, then 7x7 average pooling."""

    def __init__(self, res5: nn.Module) -> None:
        super().__init__()
        self.res5 = res5
        self.dim_out = res5.dim_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_map(x)[0]

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled vector [R, 2048], res5 output map) so a mask head can share res5 (v0upshare)."""
        res5 = self.res5(x)
        # Detectron's res5_pool is a 7x7 average over the 7x7 res5 output: a global mean
        return F.adaptive_avg_pool2d(res5, 1).flatten(1), res5

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping, orphans = self.res5.detectron_weight_mapping()
        return add_prefix(mapping, "res5"), orphans


def build_roi_pooler(cfg, strides: Sequence[int], section: str = "FAST_RCNN") -> RoIPooler:
    """The RoI transform of `section`'s ROI_XFORM_* keys (FAST_RCNN, MRCNN or KRCNN) and
    FPN.ROI_* for several levels."""
    node = cfg[section]
    return RoIPooler(
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


@BOX_HEADS.register("fast_rcnn_heads.roi_2mlp_head")
def build_roi_2mlp_head(cfg, dim_in: int, strides: Sequence[int]):
    head = MLPHead(dim_in, cfg.FAST_RCNN.ROI_XFORM_RESOLUTION, cfg.FAST_RCNN.MLP_HEAD_DIM)
    return build_roi_pooler(cfg, strides), head


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
def build_roi_xconv1fc_head(cfg, dim_in: int, strides: Sequence[int]):
    return build_roi_pooler(cfg, strides), _conv_fc_head(cfg, dim_in, use_gn=False)


@BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_gn_head")
def build_roi_xconv1fc_gn_head(cfg, dim_in: int, strides: Sequence[int]):
    return build_roi_pooler(cfg, strides), _conv_fc_head(cfg, dim_in, use_gn=True)


@BOX_HEADS.register("ResNet.ResNet_roi_conv5_head")
def build_resnet_roi_conv5_head(cfg, dim_in: int, strides: Sequence[int]):
    resolution = cfg.FAST_RCNN.ROI_XFORM_RESOLUTION
    res5 = res5_head_stage(
        dim_in=dim_in,
        stride_init=resolution // 7,
        dilation=1,
        **resnet_block_kwargs_from_cfg(cfg),
    )
    return build_roi_pooler(cfg, strides), ResNetRoIConv5Head(res5)
