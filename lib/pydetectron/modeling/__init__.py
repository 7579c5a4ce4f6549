"""Modeling: registries of bodies and heads keyed by Detectron names, and the modules."""

from . import backbones, necks  # noqa: F401  (importing fills the registries)
from .model_builder import build_model
from .registry import BODIES, Registry
from .roi_heads.box_head_builders import BOX_HEADS

__all__ = ["BODIES", "BOX_HEADS", "Registry", "build_body", "build_model"]


def build_body(cfg):
    """The conv body named by ``cfg.MODEL.CONV_BODY`` (Detectron or Detectron.pytorch name)."""
    return BODIES.get(cfg.MODEL.CONV_BODY)(cfg)
