"""Backbones with published weights, re-implemented here: ViT (AugReg, DeiT, DeiT-3, SigLIP,
register tokens, ViTDet form), MLP-Mixer, CaiT, Swin, ConvNeXt and ConvNeXt-V2.

Importing this package registers every variant in `pydetectron.backbones.BACKBONES`
(names in `vit_variants.py` and `variants.py`).
"""

from . import variants, vit_variants  # noqa: F401  (register the variants)
from .cait import Cait
from .checkpoint import LoadReport, PortedBackbone, read_weights_file
from .convnext import ConvNeXt
from .factory import PORTED_NAMES
from .mixer import MlpMixer
from .simple_fpn import SimpleFeaturePyramid
from .swin import SwinTransformer
from .vit import VisionTransformer

__all__ = [
    "Cait",
    "ConvNeXt",
    "LoadReport",
    "MlpMixer",
    "PORTED_NAMES",
    "PortedBackbone",
    "SimpleFeaturePyramid",
    "SwinTransformer",
    "VisionTransformer",
    "read_weights_file",
]
