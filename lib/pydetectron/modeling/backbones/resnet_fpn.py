"""Detectron's FPN bodies: a conv5 ResNet body with Detectron's FPN on top
(``FPN.fpn_ResNet*_conv5_body`` and ``..._P2only_body``).

The body returns ``{"p2": ..., "p6": ...}`` (levels from ``fpn_min_max_levels``); a
``P2only`` body returns only ``{"p2": ...}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...nn import GroupNormSettings
from ..levels import HIGHEST_BACKBONE_LEVEL, LOWEST_BACKBONE_LEVEL, fpn_min_max_levels, level_of_stride
from ..necks.fpn import FPN
from ..necks.neck_body import NeckBody
from ..registry import BODIES
from .resnet import RESNET_BLOCK_COUNTS, ResNetBody


class DetectronFPNBody(NeckBody):
    """A conv5 ResNet body (strides 4..32) with Detectron's FPN over its stages min_level..5.

    With ``p2_only`` the body returns only its finest level (``..._P2only_body``).
    """

    def __init__(
        self,
        bottom_up: ResNetBody,
        dim: int = 256,
        min_level: int = LOWEST_BACKBONE_LEVEL,
        max_level: int = HIGHEST_BACKBONE_LEVEL + 1,
        extra_conv_levels: bool = False,
        extra_conv_input: str = "backbone",
        zero_init_lateral: bool = False,
        use_gn: bool = False,
        gn: GroupNormSettings | None = None,
        p2_only: bool = False,
    ) -> None:
        shapes = {name: stride for name, stride in zip(bottom_up.stage_names, bottom_up.stage_strides)}
        if list(shapes.values()) != [4, 8, 16, 32]:
            raise ValueError(
                "an FPN body needs a conv5 ResNet body with stage strides 4, 8, 16, 32 (no "
                f"RESNETS.RES5_DILATION); got {shapes}"
            )
        if not LOWEST_BACKBONE_LEVEL <= min_level <= HIGHEST_BACKBONE_LEVEL:
            raise ValueError(
                f"FPN: the finest level must be in {LOWEST_BACKBONE_LEVEL}..{HIGHEST_BACKBONE_LEVEL}, got {min_level}"
            )
        in_features = [name for name, stride in shapes.items() if level_of_stride(stride) >= min_level]
        bottom_up.out_features = in_features
        fpn = FPN(
            [bottom_up.output_shape()[name].channels for name in in_features],
            dim=dim,
            first_level=min_level,
            max_level=max_level,
            extra_conv_levels=extra_conv_levels,
            extra_conv_input=extra_conv_input,
            zero_init_lateral=zero_init_lateral,
            use_gn=use_gn,
            gn=gn or GroupNormSettings(),
            in_blob_names=[bottom_up.blob_name(name) for name in in_features],
        )
        super().__init__(bottom_up, fpn, in_features, out_features=[f"p{min_level}"] if p2_only else None)

    @classmethod
    def from_cfg(cls, cfg, block_counts: Sequence[int], p2_only: bool = False) -> DetectronFPNBody:
        """Build from RESNETS.*, FREEZE_AT, GROUP_NORM.* and FPN.* keys."""
        min_level, max_level = fpn_min_max_levels(cfg)
        return cls(
            ResNetBody.from_cfg(cfg, block_counts),
            dim=int(cfg.FPN.DIM),
            min_level=min_level,
            max_level=max_level,
            extra_conv_levels=bool(cfg.FPN.EXTRA_CONV_LEVELS),
            extra_conv_input=str(cfg.FPN.EXTRA_CONV_LEVELS_INPUT),
            zero_init_lateral=bool(cfg.FPN.ZERO_INIT_LATERAL),
            use_gn=bool(cfg.FPN.USE_GN),
            gn=GroupNormSettings.from_cfg(cfg),
            p2_only=p2_only,
        )


for _depth in (50, 101, 152):
    for _p2_only in (False, True):
        BODIES.register(
            f"FPN.fpn_ResNet{_depth}_conv5{'_P2only' if _p2_only else ''}_body",
            block_counts=RESNET_BLOCK_COUNTS[_depth],
            p2_only=_p2_only,
        )(DetectronFPNBody)
