"""Layers shared by bodies and heads: Detectron's norms, norm folding and Caffe2 weight fills."""

from .affine_channel import AffineChannel2d
from .fold import (
    ConvNormFolding,
    FoldCache,
    apply_norm_,
    fold_conv_norm,
    fold_norms,
    is_foldable,
    norm_scale_shift,
    run_conv_norm,
)
from .frozen_batch_norm import FrozenBatchNorm2d
from .group_norm import DEFAULT_GN, GroupNormSettings, get_group_gn, group_norm
from .init import constant_fill_, fill_by_name, gaussian_fill_, msra_fill_, xavier_fill_
from .norm import NORM_KINDS, check_norm_kind, detectron_norm_suffix, make_norm
from .weight_mapping import (
    WeightMapping,
    add_prefix,
    conv_mapping,
    norm_mapping,
    prefix_both,
    submodule_mappings,
    submodule_torchvision_mappings,
)

__all__ = [
    "AffineChannel2d",
    "ConvNormFolding",
    "FoldCache",
    "apply_norm_",
    "fold_conv_norm",
    "fold_norms",
    "is_foldable",
    "norm_scale_shift",
    "run_conv_norm",
    "FrozenBatchNorm2d",
    "DEFAULT_GN",
    "GroupNormSettings",
    "get_group_gn",
    "group_norm",
    "constant_fill_",
    "fill_by_name",
    "gaussian_fill_",
    "msra_fill_",
    "xavier_fill_",
    "NORM_KINDS",
    "check_norm_kind",
    "detectron_norm_suffix",
    "make_norm",
    "WeightMapping",
    "add_prefix",
    "conv_mapping",
    "norm_mapping",
    "prefix_both",
    "submodule_mappings",
    "submodule_torchvision_mappings",
]
