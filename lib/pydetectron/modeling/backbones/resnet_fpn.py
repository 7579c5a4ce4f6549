"""FPN bodies: a ResNet conv5 body with an FPN on top (Detectron's
``FPN.fpn_ResNet*_conv5_body`` and ``..._P2only_body``).

Outputs follow Detectron's order, COARSEST FIRST: with the default levels 2..6 the
forward returns ``[P6, P5, P4, P3, P2]`` and ``spatial_scale`` is
``[1/64, 1/32, 1/16, 1/8, 1/4]``; ``levels`` is ``[6, 5, 4, 3, 2]``. A ``P2only`` body
returns only the finest map (a tensor) and a float ``spatial_scale``.
"""

import torch
from torch import nn

from ...nn import DEFAULT_GN, GroupNormSettings, WeightMapping, add_prefix
from ..necks.fpn import FPN
from ..registry import BODIES
from .resnet import RESNET_BLOCK_COUNTS, ResNetBody

# Detectron assumes a backbone with 5 stride-2 reductions whose maps are levels 2..5.
LOWEST_BACKBONE_LEVEL = 2
HIGHEST_BACKBONE_LEVEL = 5


def fpn_min_max_levels(cfg) -> tuple[int, int]:
    """Pyramid levels that RPN and/or RoI heads need (Detectron's get_min_max_levels)."""
    fpn = cfg.FPN
    min_level, max_level = LOWEST_BACKBONE_LEVEL, HIGHEST_BACKBONE_LEVEL
    if fpn.MULTILEVEL_RPN and not fpn.MULTILEVEL_ROIS:
        min_level, max_level = fpn.RPN_MIN_LEVEL, fpn.RPN_MAX_LEVEL
    elif fpn.MULTILEVEL_ROIS and not fpn.MULTILEVEL_RPN:
        min_level, max_level = fpn.ROI_MIN_LEVEL, fpn.ROI_MAX_LEVEL
    elif fpn.MULTILEVEL_RPN and fpn.MULTILEVEL_ROIS:
        min_level = min(fpn.RPN_MIN_LEVEL, fpn.ROI_MIN_LEVEL)
        max_level = max(fpn.RPN_MAX_LEVEL, fpn.ROI_MAX_LEVEL)
    return int(min_level), int(max_level)


class FPNBody(nn.Module):
    """A conv5 ``ResNetBody`` (levels 2..5) followed by an ``FPN``.

    Args:
        conv_body: a conv5 body with strides 4..32 (no res5 dilation).
        dim: FPN channels (FPN.DIM).
        min_level, max_level: finest and coarsest output levels (see fpn_min_max_levels);
            backbone stages finer than ``min_level`` are not used by the FPN.
        extra_conv_levels, zero_init_lateral, use_gn, gn: as for ``FPN``.
        p2_only: return only the finest level (Detectron's ``*_P2only`` bodies).

    ``dim_out`` is ``dim``; ``spatial_scale`` and ``levels`` are coarsest first (or the
    finest level's scale / level alone for ``p2_only``).
    """

    def __init__(
        self,
        conv_body: ResNetBody,
        dim: int = 256,
        min_level: int = LOWEST_BACKBONE_LEVEL,
        max_level: int = HIGHEST_BACKBONE_LEVEL + 1,
        extra_conv_levels: bool = False,
        zero_init_lateral: bool = False,
        use_gn: bool = False,
        gn: GroupNormSettings = DEFAULT_GN,
        p2_only: bool = False,
    ):
        super().__init__()
        expected_scales = [1.0 / 2**level for level in range(2, 6)]
        if list(conv_body.stage_spatial_scales) != expected_scales:
            raise ValueError(
                "FPNBody needs a conv5 body with stage strides 4, 8, 16, 32 (no "
                f"RESNETS.RES5_DILATION); got spatial scales {conv_body.stage_spatial_scales}"
            )
        if not LOWEST_BACKBONE_LEVEL <= min_level <= HIGHEST_BACKBONE_LEVEL:
            raise ValueError(
                f"FPNBody: min_level must be in {LOWEST_BACKBONE_LEVEL}..{HIGHEST_BACKBONE_LEVEL}, got {min_level}"
            )
        self.backbone = conv_body
        first = min_level - LOWEST_BACKBONE_LEVEL
        self._first_stage = first
        self.fpn = FPN(
            conv_body.stage_dims[first:],
            dim=dim,
            first_level=min_level,
            max_level=max_level,
            extra_conv_levels=extra_conv_levels,
            zero_init_lateral=zero_init_lateral,
            use_gn=use_gn,
            gn=gn,
            in_blob_names=conv_body.stage_blob_names[first:],
        )
        self.p2_only = p2_only
        self.dim_out = dim
        levels = list(reversed(self.fpn.levels))
        scales = [1.0 / 2**level for level in levels]
        self.levels: list[int] | int = levels[-1] if p2_only else levels
        self.spatial_scale: list[float] | float = scales[-1] if p2_only else scales

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        """Pyramid maps coarsest first (``[P6, P5, P4, P3, P2]``), or P2 alone if p2_only."""
        features = self.backbone.forward_features(x)[self._first_stage :]
        if self.p2_only:
            return self.fpn(features, finest_only=True)[0]
        return self.fpn(features)[::-1]

    def detectron_weight_mapping(self) -> WeightMapping:
        body_mapping, orphans = self.backbone.detectron_weight_mapping()
        fpn_mapping, fpn_orphans = self.fpn.detectron_weight_mapping()
        mapping = add_prefix(body_mapping, "backbone") | add_prefix(fpn_mapping, "fpn")
        return mapping, orphans + fpn_orphans

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names of a torchvision ``BackboneWithFPN`` state dict (``body.*``, ``fpn.*``), as
        in ``fasterrcnn_resnet50_fpn``'s ``backbone``, for our weights."""
        mapping = add_prefix(self.backbone.torchvision_weight_mapping(), "backbone")
        mapping = {ours: f"body.{theirs}" for ours, theirs in mapping.items()}
        for ours, theirs in self.fpn.torchvision_weight_mapping().items():
            mapping[f"fpn.{ours}"] = f"fpn.{theirs}"
        return mapping

    @classmethod
    def from_cfg(cls, cfg, block_counts, p2_only: bool = False) -> "FPNBody":
        """Build from RESNETS.*, FREEZE_AT, GROUP_NORM.* and FPN.* keys."""
        min_level, max_level = fpn_min_max_levels(cfg)
        return cls(
            ResNetBody.from_cfg(cfg, block_counts),
            dim=int(cfg.FPN.DIM),
            min_level=min_level,
            max_level=max_level,
            extra_conv_levels=bool(cfg.FPN.EXTRA_CONV_LEVELS),
            zero_init_lateral=bool(cfg.FPN.ZERO_INIT_LATERAL),
            use_gn=bool(cfg.FPN.USE_GN),
            gn=GroupNormSettings.from_cfg(cfg),
            p2_only=p2_only,
        )


def _register_fpn_body(depth: int, p2_only: bool) -> None:
    name = f"FPN.fpn_ResNet{depth}_conv5{'_P2only' if p2_only else ''}_body"
    block_counts = RESNET_BLOCK_COUNTS[depth]

    def build(cfg) -> FPNBody:
        return FPNBody.from_cfg(cfg, block_counts, p2_only=p2_only)

    build.__name__ = name.rpartition(".")[2]
    build.__doc__ = f"ResNet-{depth} conv5 body with FPN ({name})."
    BODIES.register(name)(build)


for _depth in (50, 101, 152):
    for _p2_only in (False, True):
        _register_fpn_body(_depth, _p2_only)
