"""`build_model(cfg)`: the Generalized R-CNN a Detectron config describes."""

from __future__ import annotations

import math

from torch import nn

from .generalized_rcnn import GeneralizedRCNN
from .registry import BODIES
from .roi_heads.box_head_builders import BOX_HEADS
from .roi_heads.box_heads import FastRCNNOutputs
from .roi_heads.box_postprocess import BoxPostProcessor
from .roi_heads.box_sampling import FastRCNNSampler
from .rpn.rpn import RPN

SUPPORTED_MODEL_TYPES = ("generalized_rcnn",)


def _as_list(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def build_model(cfg) -> nn.Module:
    """Build the model of `cfg` (MODEL.TYPE, MODEL.CONV_BODY, FAST_RCNN.ROI_BOX_HEAD, RPN/FPN keys)."""
    if cfg.MODEL.TYPE not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"MODEL.TYPE {cfg.MODEL.TYPE!r} is not supported; expected one of {SUPPORTED_MODEL_TYPES}")
    if not (cfg.MODEL.FASTER_RCNN or cfg.MODEL.RPN_ONLY):
        raise ValueError(
            "only end-to-end models are supported: set MODEL.FASTER_RCNN: True (or MODEL.RPN_ONLY: True); "
            "precomputed proposals are not"
        )
    for flag in ("MASK_ON", "KEYPOINTS_ON"):
        if cfg.MODEL[flag]:
            raise ValueError(f"MODEL.{flag}: mask and keypoint heads are not available in this version")
    body = BODIES.get(cfg.MODEL.CONV_BODY)(cfg)
    scales = _as_list(body.spatial_scale)
    strides = [int(round(1.0 / s)) for s in scales]
    levels = [int(round(math.log2(s))) for s in strides]
    multilevel = len(scales) > 1
    rpn_levels = roi_levels = None
    if multilevel:
        rpn_levels = [lv for lv in levels if cfg.FPN.RPN_MIN_LEVEL <= lv <= cfg.FPN.RPN_MAX_LEVEL]
        roi_levels = [lv for lv in levels if cfg.FPN.ROI_MIN_LEVEL <= lv <= cfg.FPN.ROI_MAX_LEVEL]
    rpn_strides = strides if rpn_levels is None else [2**lv for lv in rpn_levels]
    rpn = RPN.from_cfg(cfg, body.dim_out, rpn_strides)
    if cfg.MODEL.RPN_ONLY:
        return GeneralizedRCNN(body, rpn, rpn_levels=rpn_levels, roi_levels=roi_levels)

    roi_scales = scales if roi_levels is None else [1.0 / 2**lv for lv in roi_levels]
    box_pooler, box_head = BOX_HEADS.get(cfg.FAST_RCNN.ROI_BOX_HEAD)(cfg, body.dim_out, roi_scales)
    box_outputs = FastRCNNOutputs(box_head.dim_out, cfg.MODEL.NUM_CLASSES, cfg.MODEL.CLS_AGNOSTIC_BBOX_REG)
    return GeneralizedRCNN(
        body,
        rpn,
        box_pooler=box_pooler,
        box_head=box_head,
        box_outputs=box_outputs,
        sampler=FastRCNNSampler.from_cfg(cfg),
        postprocessor=BoxPostProcessor.from_cfg(cfg),
        rpn_levels=rpn_levels,
        roi_levels=roi_levels,
        box_decode_space=cfg.TEST.BOX_DECODE_SPACE,
    )
