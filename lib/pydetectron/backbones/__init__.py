"""Backbones with multi-level outputs (toolbox and ported families), found by name.

    from pydetectron import backbones
    model = backbones.vovnet39_ese(pretrained="vovnet39_ese.pth")   # a local file
    maps = model.get_feature_maps(x)                                 # strides 2..32

Every constructor is registered in `BACKBONES`; `backbones.<name>` and
`build_backbone(name)` both find it.
"""

from __future__ import annotations

from .base import FEATURE_STRIDES, Backbone
from .registry import BACKBONES, build_backbone, register_backbone

# isort: split
# Families register their constructors on import.
# --- toolbox families (Darknet, VoVNet, torchvision wrappers) ---
from . import toolbox  # noqa: F401

# isort: split
# --- ported families (ViT, Mixer, CaiT, Swin, ConvNeXt) ---
# isort: split
from . import ported  # noqa: F401  (registers vit_*, deit*, siglip_*, mixer_*, cait_*, swin_*, convnext*)

__all__ = ["BACKBONES", "FEATURE_STRIDES", "Backbone", "build_backbone", "list_backbones", "register_backbone"]


def list_backbones() -> list[str]:
    """Names of every registered backbone."""
    return list(BACKBONES)


def __getattr__(name: str):
    if name in BACKBONES:
        return BACKBONES.get(name)
    raise AttributeError(f"module 'pydetectron.backbones' has no attribute {name!r}")
