"""Modeling: registries of bodies and heads keyed by Detectron names, and the modules."""

from . import backbones, necks  # noqa: F401  (importing fills the registries)
from . import roi_heads as _roi_heads  # noqa: F401  (registers the mask / keypoint branches)
from .levels import ShapeSpec
from .model_builder import build_model, build_roi_heads
from .registry import BODIES, Registry
from .roi_heads.box_head_builders import BOX_HEADS
from .roi_heads.branch import ROI_BRANCHES, ImageInfo, PooledHeadBranch, RoIBranch

__all__ = [
    "BODIES",
    "BOX_HEADS",
    "ROI_BRANCHES",
    "ImageInfo",
    "Registry",
    "PooledHeadBranch",
    "RoIBranch",
    "ShapeSpec",
    "build_body",
    "build_model",
    "build_roi_heads",
]


def build_body(cfg):
    """The conv body named by ``cfg.MODEL.CONV_BODY`` (Detectron or Detectron.pytorch name)."""
    return BODIES.get(cfg.MODEL.CONV_BODY)(cfg)
