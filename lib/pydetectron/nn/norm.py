"""Norm layer factory: one name per kind of norm a body can be built with."""

from torch import nn

from .affine_channel import AffineChannel2d
from .frozen_batch_norm import FrozenBatchNorm2d
from .group_norm import DEFAULT_GN, GroupNormSettings, group_norm

# 'AffineChannel': Detectron's frozen per-channel scale and bias (fine-tuning default).
# 'FrozenBN': torchvision's BatchNorm with frozen statistics (torchvision convention).
# 'BN': trainable BatchNorm2d (training from scratch).
# 'GN': GroupNorm with GROUP_NORM settings (Detectron's *_gn models).
NORM_KINDS = ("AffineChannel", "FrozenBN", "BN", "GN")


def check_norm_kind(kind: str) -> str:
    """Return ``kind`` or raise a ValueError listing the known kinds."""
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm kind {kind!r}; expected one of {list(NORM_KINDS)}")
    return kind


def make_norm(kind: str, dim: int, gn: GroupNormSettings = DEFAULT_GN) -> nn.Module:
    """Build a norm layer of ``kind`` over ``dim`` channels."""
    check_norm_kind(kind)
    if kind == "AffineChannel":
        return AffineChannel2d(dim)
    if kind == "FrozenBN":
        return FrozenBatchNorm2d(dim)
    if kind == "BN":
        return nn.BatchNorm2d(dim)
    return group_norm(dim, dim_per_gp=gn.dim_per_gp, num_groups=gn.num_groups, eps=gn.eps)


def detectron_norm_suffix(kind: str) -> str:
    """Detectron blob suffix of a norm's scale/bias: ``_gn`` for GN, ``_bn`` otherwise."""
    return "_gn" if check_norm_kind(kind) == "GN" else "_bn"
