"""vision-toolbox backbones: Darknet, CSPDarknet, YOLOv5, VoVNet and torchvision families.

Importing this package registers every constructor in `pydetectron.backbones.BACKBONES`.
"""

from .darknet import CSPDarknetStage, Darknet, DarknetBlock, DarknetStage, DarknetYOLOv5
from .layers import ConvNormAct, EffectiveSqueezeExcitation, SeparableConvNormAct, freeze_batch_norm
from .torchvision_models import (
    TORCHVISION_BACKBONES,
    InvertedResidualBackbone,
    RegNetBackbone,
    ResNetBackbone,
    TorchvisionBackbone,
)
from .vovnet import OSABlock, VoVNet, VoVNetStage, vovnet_stages

__all__ = [
    "TORCHVISION_BACKBONES",
    "CSPDarknetStage",
    "ConvNormAct",
    "Darknet",
    "DarknetBlock",
    "DarknetStage",
    "DarknetYOLOv5",
    "EffectiveSqueezeExcitation",
    "InvertedResidualBackbone",
    "OSABlock",
    "RegNetBackbone",
    "ResNetBackbone",
    "SeparableConvNormAct",
    "TorchvisionBackbone",
    "VoVNet",
    "VoVNetStage",
    "freeze_batch_norm",
    "vovnet_stages",
]
