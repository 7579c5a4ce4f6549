"""`build_model(cfg)`: the Generalized R-CNN a Detectron config describes.

The body says which maps it returns (`output_shape()`); the builder picks the maps the
RPN and the RoI heads read by pyramid level (FPN.RPN_*_LEVEL, FPN.ROI_*_LEVEL) or, for
single-scale models, the body's one map. RoI branches are found in `ROI_BRANCHES`:
'mask' with MODEL.MASK_ON, 'keypoint' with MODEL.KEYPOINTS_ON, and every name in
MODEL.EXTRA_ROI_BRANCHES. MODEL.TYPE retinanet (or RETINANET.RETINANET_ON) builds a
`RetinaNet` on the body instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .generalized_rcnn import GeneralizedRCNN
from .levels import ShapeSpec, features_in_levels, finest_first
from .registry import BODIES
from .retinanet import RetinaNet
from .roi_heads.box_branch import BoxBranch
from .roi_heads.branch import ROI_BRANCHES
from .roi_heads.roi_heads import RoIHeads
from .rpn.rpn import RPN

SUPPORTED_MODEL_TYPES = ("generalized_rcnn", "retinanet")


def _single_map(shapes: Mapping[str, ShapeSpec], who: str) -> list[str]:
    if len(shapes) != 1:
        raise ValueError(
            f"{who} reads one feature map without FPN, but MODEL.CONV_BODY returns {list(shapes)}; "
            "set FPN.FPN_ON and the FPN.MULTILEVEL_* keys to use several levels"
        )
    return list(shapes)


def rpn_in_features(cfg, shapes: Mapping[str, ShapeSpec]) -> list[str]:
    """Maps the RPN reads: FPN.RPN_MIN_LEVEL..RPN_MAX_LEVEL with a multilevel RPN, else the one map."""
    if cfg.FPN.FPN_ON and cfg.FPN.MULTILEVEL_RPN:
        return features_in_levels(shapes, int(cfg.FPN.RPN_MIN_LEVEL), int(cfg.FPN.RPN_MAX_LEVEL))
    return _single_map(shapes, "the RPN")


def roi_in_features(cfg, shapes: Mapping[str, ShapeSpec]) -> list[str]:
    """Maps the RoI branches pool from: FPN.ROI_MIN_LEVEL..ROI_MAX_LEVEL with multilevel RoIs, else the one map."""
    if cfg.FPN.FPN_ON and cfg.FPN.MULTILEVEL_ROIS:
        return features_in_levels(shapes, int(cfg.FPN.ROI_MIN_LEVEL), int(cfg.FPN.ROI_MAX_LEVEL))
    return _single_map(shapes, "the RoI heads")


def roi_branch_names(cfg) -> list[str]:
    """Registered RoI branches this config switches on, in order."""
    names = (["mask"] if cfg.MODEL.MASK_ON else []) + (["keypoint"] if cfg.MODEL.KEYPOINTS_ON else [])
    return names + [str(name) for name in cfg.MODEL.EXTRA_ROI_BRANCHES]


def build_roi_heads(cfg, shapes: Mapping[str, ShapeSpec]) -> RoIHeads:
    """The box branch and every branch of `roi_branch_names(cfg)`."""
    in_features = roi_in_features(cfg, shapes)
    box = BoxBranch.from_cfg(cfg, shapes, in_features)
    branches = {}
    for name in roi_branch_names(cfg):
        if name in branches or name == "box":
            raise ValueError(f"RoI branch {name!r} is listed twice (MODEL.MASK_ON/KEYPOINTS_ON/EXTRA_ROI_BRANCHES)")
        branches[name] = ROI_BRANCHES.get(name).from_cfg(cfg, shapes, box)
    return RoIHeads(box, branches)


def is_retinanet(cfg) -> bool:
    """MODEL.TYPE retinanet or RETINANET.RETINANET_ON (Detectron sets both; `RetinaNet.from_cfg`
    rejects another MODEL.TYPE)."""
    return cfg.MODEL.TYPE == "retinanet" or bool(cfg.RETINANET.RETINANET_ON)


def build_model(cfg) -> nn.Module:
    """Build the model of `cfg` (MODEL.TYPE, MODEL.CONV_BODY, RPN/FPN keys, the RoI branches)."""
    if is_retinanet(cfg):
        return RetinaNet.from_cfg(cfg, BODIES.get(cfg.MODEL.CONV_BODY)(cfg))
    if cfg.MODEL.TYPE not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"MODEL.TYPE {cfg.MODEL.TYPE!r} is not supported; expected one of {SUPPORTED_MODEL_TYPES}")
    if not (cfg.MODEL.FASTER_RCNN or cfg.MODEL.RPN_ONLY):
        raise ValueError(
            "only end-to-end models are supported: set MODEL.FASTER_RCNN: True (or MODEL.RPN_ONLY: True); "
            "precomputed proposals are not"
        )
    body = BODIES.get(cfg.MODEL.CONV_BODY)(cfg)
    if cfg.TRAIN.FREEZE_CONV_BODY:  # Detectron: no gradient flows into the body (FPN included)
        body.requires_grad_(False)
    shapes = body.output_shape()
    rpn_features = rpn_in_features(cfg, shapes)
    channels = {shapes[name].channels for name in rpn_features}
    if len(channels) != 1:
        raise ValueError(f"the RPN's maps {rpn_features} must have one channel count, got {channels}")
    rpn = RPN.from_cfg(cfg, channels.pop(), [shapes[name].stride for name in rpn_features])
    if cfg.MODEL.RPN_ONLY:
        if cfg.MODEL.MASK_ON or cfg.MODEL.KEYPOINTS_ON:
            raise ValueError("MODEL.RPN_ONLY models have no RoI heads: MASK_ON / KEYPOINTS_ON must be False")
        return GeneralizedRCNN(body, rpn, rpn_features)
    return GeneralizedRCNN(body, rpn, rpn_features, build_roi_heads(cfg, shapes))


__all__ = [
    "build_model",
    "build_roi_heads",
    "finest_first",
    "is_retinanet",
    "roi_branch_names",
    "roi_in_features",
    "rpn_in_features",
]
