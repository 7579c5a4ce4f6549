"""Feature Pyramid Network as Detectron's FPN.py builds it.

Inputs are backbone maps C_first..C_top, finest first (C2, C3, C4, C5 for a ResNet);
outputs are P_first..P_max, finest first, all with ``dim`` channels:

- the coarsest input gets a 1x1 conv (``fpn_inner_<blob>``) that seeds the top-down path;
  every finer input gets a lateral 1x1 conv (``fpn_inner_<blob>_lateral``) summed with the
  2x nearest-neighbour upsampling of the level above;
- each of those sums gets a 3x3 output conv (``fpn_<blob>``);
- above the top backbone level: with ``extra_conv_levels`` (RetinaNet) 3x3 stride-2 convs
  ``fpn_6``, ``fpn_7``, ... (the first on C_top as Detectron does, or on P_top with
  ``extra_conv_input='pyramid'`` as torchvision's retinanet_resnet50_fpn does; the next
  ones on ReLU of the previous level); without, and ``max_level == top + 1``, P6 is P5
  subsampled by a max-pool with kernel 1 and stride 2 (the FPN paper's P6).

With ``use_gn`` the 1x1 and 3x3 convs lose their bias and get a GroupNorm each
(``..._gn_s/_b``); the extra conv levels stay plain convs, as in Detectron. The
upsampling is nearest-neighbour to the lateral's size, which is exactly Detectron's 2x
when sizes are multiples of the coarsest stride (as FPN.COARSEST_STRIDE padding makes
them) and torchvision's behaviour otherwise.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import (
    DEFAULT_GN,
    GroupNormSettings,
    WeightMapping,
    constant_fill_,
    group_norm,
    xavier_fill_,
)

# What the first extra conv level reads: the top backbone map (C5) or the top pyramid map (P5).
EXTRA_CONV_INPUTS = ("backbone", "pyramid")


class FPNConv(nn.Module):
    """A conv of the FPN, followed by a GroupNorm when ``use_gn`` (then without bias)."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        kernel_size: int,
        stride: int = 1,
        use_gn: bool = False,
        gn: GroupNormSettings = DEFAULT_GN,
        zero_init: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=not use_gn)
        self.norm = (
            group_norm(dim_out, dim_per_gp=gn.dim_per_gp, num_groups=gn.num_groups, eps=gn.eps) if use_gn else None
        )
        if zero_init:
            constant_fill_(self.conv.weight, 0.0)
        else:
            xavier_fill_(self.conv.weight)
        if self.conv.bias is not None:
            constant_fill_(self.conv.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.norm is None else self.norm(x)

    def detectron_blob_mapping(self, blob: str) -> dict[str, str]:
        """``<blob>_w`` and ``<blob>_b``, or ``<blob>_gn_s/_gn_b`` with GroupNorm."""
        mapping = {"conv.weight": blob + "_w"}
        if self.conv.bias is not None:
            mapping["conv.bias"] = blob + "_b"
        if self.norm is not None:
            mapping["norm.weight"] = blob + "_gn_s"
            mapping["norm.bias"] = blob + "_gn_b"
        return mapping


class FPN(nn.Module):
    """Detectron's FPN over backbone maps C_first..C_top (list in, list out, finest first).

    Args:
        in_channels_list: channels of the backbone maps, finest first.
        dim: channels of every output level (FPN.DIM).
        first_level: pyramid level of the first (finest) input, 2 for C2 (stride 4).
        max_level: coarsest output level; default the top backbone level. One above it
            without ``extra_conv_levels`` adds the max-pool P6; more needs
            ``extra_conv_levels``.
        extra_conv_levels: RetinaNet's stride-2 conv levels above the backbone.
        extra_conv_input: what the first extra conv reads: 'backbone' (C_top, Detectron) or
            'pyramid' (P_top, torchvision's v1 RetinaNet).
        zero_init_lateral: lateral 1x1 convs start at zero (FPN.ZERO_INIT_LATERAL).
        use_gn: GroupNorm after the 1x1 and 3x3 convs (FPN.USE_GN), with ``gn``.
        in_blob_names: Detectron names of the input maps (e.g. 'res4_5_sum'), used by
            ``detectron_weight_mapping``; default 'c<level>'.

    ``levels`` lists the output levels, finest first; every output has ``out_channels``
    (= ``dim``) channels; ``num_outputs`` is ``len(levels)``.
    """

    def __init__(
        self,
        in_channels_list: Sequence[int],
        dim: int = 256,
        first_level: int = 2,
        max_level: int | None = None,
        extra_conv_levels: bool = False,
        extra_conv_input: str = "backbone",
        zero_init_lateral: bool = False,
        use_gn: bool = False,
        gn: GroupNormSettings = DEFAULT_GN,
        in_blob_names: Sequence[str] | None = None,
    ):
        super().__init__()
        in_channels_list = [int(c) for c in in_channels_list]
        if not in_channels_list:
            raise ValueError("FPN: in_channels_list is empty")
        top_level = first_level + len(in_channels_list) - 1
        max_level = top_level if max_level is None else int(max_level)
        if max_level < top_level:
            raise ValueError(
                f"FPN: max_level={max_level} is below the top backbone level {top_level} "
                f"(inputs are levels {first_level}..{top_level})"
            )
        if not extra_conv_levels and max_level > top_level + 1:
            raise ValueError(
                f"FPN: max_level={max_level} needs extra_conv_levels (FPN.EXTRA_CONV_LEVELS); "
                f"without them only level {top_level + 1} (max-pool P6) can be added above "
                f"the backbone's {top_level}"
            )
        if extra_conv_input not in EXTRA_CONV_INPUTS:
            raise ValueError(f"FPN: extra_conv_input must be one of {EXTRA_CONV_INPUTS}, got {extra_conv_input!r}")
        if in_blob_names is None:
            in_blob_names = [f"c{level}" for level in range(first_level, top_level + 1)]
        if len(in_blob_names) != len(in_channels_list):
            raise ValueError(f"FPN: {len(in_blob_names)} in_blob_names for {len(in_channels_list)} inputs")
        self.in_channels_list = in_channels_list
        self.in_blob_names = list(in_blob_names)
        self.out_channels = dim
        self.first_level = first_level
        self.top_level = top_level
        self.max_level = max_level
        self.use_max_pool_p6 = not extra_conv_levels and max_level == top_level + 1
        self.extra_conv_input = extra_conv_input
        self.levels = list(range(first_level, max_level + 1))
        self.num_outputs = len(self.levels)

        # inner_convs[i] reads input i; the last one seeds the top-down path, the others
        # are the laterals.
        self.inner_convs = nn.ModuleList(
            FPNConv(
                c,
                dim,
                1,
                use_gn=use_gn,
                gn=gn,
                zero_init=zero_init_lateral and i < len(in_channels_list) - 1,
            )
            for i, c in enumerate(in_channels_list)
        )
        self.output_convs = nn.ModuleList(FPNConv(dim, dim, 3, use_gn=use_gn, gn=gn) for _ in in_channels_list)
        num_extra = max_level - top_level if extra_conv_levels else 0
        first_extra_in = in_channels_list[-1] if extra_conv_input == "backbone" else dim
        self.extra_convs = nn.ModuleList(
            FPNConv(first_extra_in if i == 0 else dim, dim, 3, stride=2) for i in range(num_extra)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Pyramid maps P_first..P_max, finest first."""
        if len(features) != len(self.inner_convs):
            raise ValueError(
                f"FPN expects {len(self.inner_convs)} feature maps (levels "
                f"{self.first_level}..{self.top_level}, finest first), got {len(features)}"
            )
        for level, (feature, channels) in enumerate(zip(features, self.in_channels_list), start=self.first_level):
            if feature.dim() != 4 or feature.shape[1] != channels:
                raise ValueError(f"FPN input C{level} must be [N, {channels}, H, W], got shape {tuple(feature.shape)}")
        inner = self.inner_convs[-1](features[-1])
        outputs = [self.output_convs[-1](inner)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.inner_convs[i](features[i])
            inner = lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.output_convs[i](inner))
        if self.use_max_pool_p6:
            outputs.append(F.max_pool2d(outputs[-1], kernel_size=1, stride=2, padding=0))
        x = features[-1] if self.extra_conv_input == "backbone" else outputs[len(features) - 1]
        for i, conv in enumerate(self.extra_convs):
            x = conv(F.relu(x) if i > 0 else x)
            outputs.append(x)
        return outputs

    def detectron_weight_mapping(self) -> WeightMapping:
        """Detectron blobs: ``fpn_inner_<top>``, ``fpn_inner_<blob>_lateral``,
        ``fpn_<blob>``, ``fpn_6``, ... (``_w``, ``_b`` or ``_gn_s/_gn_b``)."""
        mapping: dict[str, str] = {}
        top = len(self.inner_convs) - 1
        for i, blob in enumerate(self.in_blob_names):
            inner_blob = f"fpn_inner_{blob}" if i == top else f"fpn_inner_{blob}_lateral"
            for name, value in self.inner_convs[i].detectron_blob_mapping(inner_blob).items():
                mapping[f"inner_convs.{i}.{name}"] = value
            for name, value in self.output_convs[i].detectron_blob_mapping(f"fpn_{blob}").items():
                mapping[f"output_convs.{i}.{name}"] = value
        for i, conv in enumerate(self.extra_convs):
            for name, value in conv.detectron_blob_mapping(f"fpn_{self.top_level + 1 + i}").items():
                mapping[f"extra_convs.{i}.{name}"] = value
        return mapping, []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names of a ``torchvision.ops.FeaturePyramidNetwork`` state dict (no GN) for ours; the
        extra conv levels are its ``LastLevelP6P7`` block (``extra_blocks.p6``, ``.p7``)."""
        mapping = {}
        for i in range(len(self.inner_convs)):
            for ours, theirs in (("inner_convs", "inner_blocks"), ("output_convs", "layer_blocks")):
                mapping[f"{ours}.{i}.conv.weight"] = f"{theirs}.{i}.0.weight"
                mapping[f"{ours}.{i}.conv.bias"] = f"{theirs}.{i}.0.bias"
        for i in range(len(self.extra_convs)):
            for tensor in ("weight", "bias"):
                mapping[f"extra_convs.{i}.conv.{tensor}"] = f"extra_blocks.p{self.top_level + 1 + i}.{tensor}"
        own = set(self.state_dict())
        return {ours: theirs for ours, theirs in mapping.items() if ours in own}
