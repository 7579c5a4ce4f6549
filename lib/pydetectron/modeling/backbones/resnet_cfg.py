"""Read the ResNet settings out of a Detectron config tree.

Only `from_cfg` classmethods call these; the modules themselves take plain arguments.
"""

from dataclasses import dataclass, fields
from typing import Any

from ...config import get_cfg
from ...nn import GroupNormSettings, check_norm_kind
from .resnet_blocks import ResStage, res5_head_stage

_BN_FUNCS = {
    "TRANS_FUNC": "bottleneck_transformation",
    "STEM_FUNC": "basic_bn_stem",
    "SHORTCUT_FUNC": "basic_bn_shortcut",
}
_GN_FUNCS = {
    "TRANS_FUNC": "bottleneck_gn_transformation",
    "STEM_FUNC": "basic_gn_stem",
    "SHORTCUT_FUNC": "basic_gn_shortcut",
}


def resnet_norm_from_cfg(cfg) -> str:
    """The body's norm kind from RESNETS.{TRANS,STEM,SHORTCUT}_FUNC (and RESNETS.NORM).

    The ``*_gn_*`` functions give 'GN', the BN ones give Detectron's 'AffineChannel';
    a non-empty ``RESNETS.NORM`` ('AffineChannel', 'FrozenBN', 'BN' or 'GN') picks
    another BN-style norm (torchvision's FrozenBN, trainable BN) and must agree with the
    functions. Mixed GN/BN functions are not supported.
    """
    resnets = cfg.RESNETS
    funcs = {key: str(resnets[key]) for key in _BN_FUNCS}
    for key, value in funcs.items():
        if value not in (_BN_FUNCS[key], _GN_FUNCS[key]):
            raise ValueError(
                f"RESNETS.{key}={value!r} is not supported; expected {_BN_FUNCS[key]!r} or {_GN_FUNCS[key]!r}"
            )
    if funcs == _GN_FUNCS:
        derived = "GN"
    elif funcs == _BN_FUNCS:
        derived = "AffineChannel"
    else:
        raise ValueError(
            "RESNETS.TRANS_FUNC, STEM_FUNC and SHORTCUT_FUNC must all be GroupNorm ones or "
            f"all BatchNorm ones, got {funcs}"
        )
    if bool(resnets.USE_GN) and derived != "GN":
        raise ValueError(
            "RESNETS.USE_GN is True but RESNETS.TRANS_FUNC/STEM_FUNC/SHORTCUT_FUNC are the "
            f"BatchNorm ones {funcs}; set them to {_GN_FUNCS}"
        )
    explicit = str(resnets.NORM or "")
    if not explicit:
        return derived
    check_norm_kind(explicit)
    if (explicit == "GN") != (derived == "GN"):
        raise ValueError(f"RESNETS.NORM={explicit!r} contradicts RESNETS.TRANS_FUNC/STEM_FUNC/SHORTCUT_FUNC {funcs}")
    return explicit


def freeze_at_from_cfg(cfg) -> int:
    """FREEZE_AT from TRAIN.FREEZE_AT (Detectron) or RESNETS.FREEZE_AT (Detectron.pytorch).

    Both default to 2; when they differ the one changed from the default wins, and two
    different non-default values are an error.
    """
    values = {"TRAIN": int(cfg.TRAIN.FREEZE_AT), "RESNETS": int(cfg.RESNETS.FREEZE_AT)}
    distinct = set(values.values())
    if len(distinct) == 1:
        return distinct.pop()
    default = int(get_cfg().TRAIN.FREEZE_AT)  # both keys share this default (config.py)
    changed = {v for v in distinct if v != default}
    if len(changed) == 1:
        return changed.pop()
    raise ValueError(
        f"TRAIN.FREEZE_AT={values.get('TRAIN')} and RESNETS.FREEZE_AT={values.get('RESNETS')} disagree; set one of them"
    )


@dataclass(frozen=True)
class ResNetBlockSettings:
    """Settings every ResNet stage shares: the body's stages and the RoI heads' res5."""

    num_groups: int
    width_per_group: int
    stride_1x1: bool
    norm: str
    gn: GroupNormSettings

    @classmethod
    def from_cfg(cls, cfg) -> "ResNetBlockSettings":
        """RESNETS.NUM_GROUPS / WIDTH_PER_GROUP / STRIDE_1X1, the norm keys and GROUP_NORM.*."""
        resnets = cfg.RESNETS
        return cls(
            num_groups=int(resnets.NUM_GROUPS),
            width_per_group=int(resnets.WIDTH_PER_GROUP),
            stride_1x1=bool(resnets.STRIDE_1X1),
            norm=resnet_norm_from_cfg(cfg),
            gn=GroupNormSettings.from_cfg(cfg),
        )

    def kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments of `ResNetBody` and `res5_head_stage`."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def res5_head(self, dim_in: int, resolution: int, dilation: int = 1) -> ResStage:
        """Detectron's res5 over pooled RoIs of ``resolution``: first stride ``resolution // 7``."""
        return res5_head_stage(dim_in, stride_init=resolution // 7, dilation=dilation, **self.kwargs())
