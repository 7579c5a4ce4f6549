"""Modeling: registries of bodies and heads keyed by Detectron names, and the modules."""

from . import backbones, necks  # noqa: F401  (importing fills the registries)
from . import roi_heads as _roi_heads  # noqa: F401  (registers the mask / keypoint branches)
from .levels import ShapeSpec
from .model_builder import build_model, model_type
from .registry import BODIES, MODEL_TYPES, Registry, RegistryEntry, UnknownNameError
from .roi_heads.branch import ROI_BRANCHES, ImageInfo, PooledHeadBranch, RoIBranch
from .roi_heads.head_registries import BOX_HEADS, KEYPOINT_HEADS, MASK_HEADS

__all__ = [
    "BODIES",
    "BOX_HEADS",
    "KEYPOINT_HEADS",
    "MASK_HEADS",
    "MODEL_TYPES",
    "ROI_BRANCHES",
    "ImageInfo",
    "Registry",
    "RegistryEntry",
    "PooledHeadBranch",
    "RoIBranch",
    "ShapeSpec",
    "UnknownNameError",
    "build_model",
    "model_type",
]

