"""Conv bodies (backbones). Importing this package registers them in ``BODIES``."""

from .resnet import RESNET_BLOCK_COUNTS, ResNetBody
from .resnet_blocks import (
    Bottleneck,
    ResNetStem,
    ResStage,
    Shortcut,
    res5_head_stage,
    stage_dim_inner,
    stage_dim_out,
)
from .resnet_cfg import ResNetBlockSettings, freeze_at_from_cfg, resnet_norm_from_cfg
from .resnet_fpn import DetectronFPNBody
from .toolbox_body import BackboneBody, ToolboxBody, ToolboxSettings, resolve_toolbox_body

__all__ = [
    "BackboneBody",
    "DetectronFPNBody",
    "ToolboxBody",
    "ToolboxSettings",
    "resolve_toolbox_body",
    "RESNET_BLOCK_COUNTS",
    "ResNetBlockSettings",
    "ResNetBody",
    "Bottleneck",
    "ResNetStem",
    "ResStage",
    "Shortcut",
    "res5_head_stage",
    "stage_dim_inner",
    "stage_dim_out",
    "freeze_at_from_cfg",
    "resnet_norm_from_cfg",
]
