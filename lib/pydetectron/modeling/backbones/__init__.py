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
from .resnet_cfg import (
    freeze_at_from_cfg,
    resnet_block_kwargs_from_cfg,
    resnet_body_kwargs_from_cfg,
    resnet_norm_from_cfg,
)
from .resnet_fpn import detectron_fpn_body, fpn_body_from_cfg
from .toolbox_body import BackboneBody, ToolboxSettings, resolve_toolbox_body, toolbox_body

__all__ = [
    "BackboneBody",
    "ToolboxSettings",
    "resolve_toolbox_body",
    "toolbox_body",
    "RESNET_BLOCK_COUNTS",
    "ResNetBody",
    "Bottleneck",
    "ResNetStem",
    "ResStage",
    "Shortcut",
    "res5_head_stage",
    "stage_dim_inner",
    "stage_dim_out",
    "detectron_fpn_body",
    "fpn_body_from_cfg",
    "freeze_at_from_cfg",
    "resnet_block_kwargs_from_cfg",
    "resnet_body_kwargs_from_cfg",
    "resnet_norm_from_cfg",
]
