"""ResNet / ResNeXt building blocks with Detectron semantics and blob names.

Blocks are Detectron's ``bottleneck_transformation`` (or its GN twin, chosen by the norm
kind) plus ``basic_*_shortcut``; the stem is ``basic_bn_stem`` / ``basic_gn_stem``. No
conv has a bias. Stride of a bottleneck sits on the first 1x1 conv when ``stride_1x1``
(MSRA / Detectron ImageNet models) and on the 3x3 otherwise (Caffe2 / torch models).

Speed: conv weights are channels-last, so every conv of the body (and the maps it
returns) runs channels-last, which oneDNN's CPU convolutions do without reordering
their input and output (1x1 convs run 2-3x faster than on NCHW maps). Each conv -> norm
pair runs through `ConvNormFolding`: frozen norms (and eval-mode BatchNorm) are folded into
the conv, other norms run in place on the conv's fresh output where autograd allows;
residual adds and ReLUs write into the block's own temporaries. None of this changes a
parameter or a state-dict key.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import (
    DEFAULT_GN,
    ConvNormFolding,
    GroupNormSettings,
    WeightMapping,
    add_prefix,
    check_norm_kind,
    conv_mapping,
    detectron_norm_suffix,
    make_norm,
    msra_fill_,
    norm_mapping,
)


def stage_dim_out(stage_index: int) -> int:
    """Output channels of stage ``res<stage_index>``: 256, 512, 1024, 2048 for res2..res5."""
    return 256 * 2 ** (stage_index - 2)


def stage_dim_inner(stage_index: int, num_groups: int, width_per_group: int) -> int:
    """Bottleneck width of ``res<stage_index>``: ``num_groups * width_per_group * 2^(i-2)``."""
    return num_groups * width_per_group * 2 ** (stage_index - 2)


def msra_conv(
    dim_in: int,
    dim_out: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> nn.Conv2d:
    """A bias-free conv with Caffe2 MSRAFill weights (PyTorch's own init is skipped),
    stored channels-last (see the module docstring)."""
    conv = torch.nn.utils.skip_init(
        nn.Conv2d,
        dim_in,
        dim_out,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=False,
    )
    msra_fill_(conv.weight)
    conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    return conv


def _conv_norm_mapping(
    conv_name: str, conv: nn.Conv2d, norm_name: str, norm: nn.Module, kind: str, blob: str
) -> dict[str, str]:
    """``<blob>_w`` for the conv, ``<blob>_bn_s/_b`` (or ``_gn_s/_b``) for its norm."""
    return conv_mapping(conv_name, conv, blob) | norm_mapping(norm_name, norm, blob + detectron_norm_suffix(kind))


class ResNetStem(ConvNormFolding, nn.Module):
    """conv1 7x7/2 (pad 3) -> norm -> ReLU -> max-pool 3x3/2 (pad 1): stride 4, 64 channels."""

    dim_out = 64
    conv_norm_pairs = (("conv1", "norm1"),)

    def __init__(self, norm: str = "AffineChannel", gn: GroupNormSettings = DEFAULT_GN):
        super().__init__()
        self.norm_kind = check_norm_kind(norm)
        self.conv1 = msra_conv(3, self.dim_out, 7, stride=2, padding=3)
        self.norm1 = make_norm(norm, self.dim_out, gn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv_norm(0, x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def detectron_weight_mapping(self) -> WeightMapping:
        """``conv1_w`` + ``res_conv1_bn_s/_b`` (BN-style norms) or ``conv1_gn_s/_b`` (GN)."""
        mapping = {"conv1.weight": "conv1_w"}
        norm_blob = "conv1_gn" if self.norm_kind == "GN" else "res_conv1_bn"
        mapping["norm1.weight"] = norm_blob + "_s"
        mapping["norm1.bias"] = norm_blob + "_b"
        orphans = [] if self.norm_kind == "GN" else ["conv1_b"]
        return mapping, orphans


class Shortcut(ConvNormFolding, nn.Module):
    """Projection shortcut: 1x1 conv (with the block's stride) -> norm (``branch1``)."""

    conv_norm_pairs = (("conv", "norm"),)

    def __init__(self, dim_in: int, dim_out: int, stride: int, norm: str, gn: GroupNormSettings):
        super().__init__()
        self.norm_kind = check_norm_kind(norm)
        self.conv = msra_conv(dim_in, dim_out, 1, stride=stride)
        self.norm = make_norm(norm, dim_out, gn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_norm(0, x)

    def detectron_blob_mapping(self, blob: str) -> WeightMapping:
        """Names under ``<blob>`` (e.g. ``res3_0_branch1``): ``_w`` and ``_bn_s/_b``."""
        mapping = _conv_norm_mapping("conv", self.conv, "norm", self.norm, self.norm_kind, blob)
        orphans = [] if self.norm_kind == "GN" else [blob + "_b"]
        return mapping, orphans


class Bottleneck(ConvNormFolding, nn.Module):
    """1x1 -> norm -> ReLU -> 3x3 (groups, dilation) -> norm -> ReLU -> 1x1 -> norm, + shortcut,
    ReLU.

    The shortcut is a projection when the channel count or the stride changes and the
    identity otherwise (Detectron's ``dim_in != dim_out`` rule in every real network).
    """

    conv_norm_pairs = (("conv1", "norm1"), ("conv2", "norm2"), ("conv3", "norm3"))

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        stride: int = 1,
        dilation: int = 1,
        num_groups: int = 1,
        stride_1x1: bool = True,
        norm: str = "AffineChannel",
        gn: GroupNormSettings = DEFAULT_GN,
    ):
        super().__init__()
        if dim_inner % num_groups != 0:
            raise ValueError(f"Bottleneck: dim_inner={dim_inner} is not divisible by num_groups={num_groups}")
        self.norm_kind = check_norm_kind(norm)
        stride_a, stride_b = (stride, 1) if stride_1x1 else (1, stride)
        self.conv1 = msra_conv(dim_in, dim_inner, 1, stride=stride_a)
        self.norm1 = make_norm(norm, dim_inner, gn)
        self.conv2 = msra_conv(
            dim_inner,
            dim_inner,
            3,
            stride=stride_b,
            padding=dilation,
            dilation=dilation,
            groups=num_groups,
        )
        self.norm2 = make_norm(norm, dim_inner, gn)
        self.conv3 = msra_conv(dim_inner, dim_out, 1)
        self.norm3 = make_norm(norm, dim_out, gn)
        needs_projection = dim_in != dim_out or stride != 1
        self.shortcut = Shortcut(dim_in, dim_out, stride, norm, gn) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv_norm(0, x))
        out = F.relu_(self.conv_norm(1, out))
        out = self.conv_norm(2, out)
        identity = x if self.shortcut is None else self.shortcut(x)
        # `out` is this block's own temporary and no backward reads it: add in place.
        return F.relu_(out.add_(identity))

    def detectron_blob_mapping(self, prefix: str) -> WeightMapping:
        """Names under ``<prefix>`` (e.g. ``res2_0``): ``_branch2{a,b,c}`` and ``_branch1``."""
        mapping: dict[str, str] = {}
        orphans: list[str] = []
        for index, letter in zip((1, 2, 3), "abc"):
            blob = f"{prefix}_branch2{letter}"
            conv, norm = getattr(self, f"conv{index}"), getattr(self, f"norm{index}")
            mapping |= _conv_norm_mapping(f"conv{index}", conv, f"norm{index}", norm, self.norm_kind, blob)
            if self.norm_kind != "GN":
                orphans.append(blob + "_b")
        if self.shortcut is not None:
            sc_mapping, sc_orphans = self.shortcut.detectron_blob_mapping(prefix + "_branch1")
            mapping |= add_prefix(sc_mapping, "shortcut")
            orphans += sc_orphans
        return mapping, orphans


class ResStage(nn.Sequential):
    """Stage ``res<stage_index>``: ``num_blocks`` bottlenecks, the first one with
    ``first_stride`` (and the projection shortcut), all with ``dilation``.

    ``blob_name`` is the Detectron name of the stage output (``res4_5_sum``), which
    FPN blob names are built from.
    """

    def __init__(
        self,
        stage_index: int,
        num_blocks: int,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        first_stride: int = 2,
        dilation: int = 1,
        num_groups: int = 1,
        stride_1x1: bool = True,
        norm: str = "AffineChannel",
        gn: GroupNormSettings = DEFAULT_GN,
    ):
        if num_blocks < 1:
            raise ValueError(f"res{stage_index}: num_blocks must be >= 1, got {num_blocks}")
        blocks = []
        for block_index in range(num_blocks):
            blocks.append(
                Bottleneck(
                    dim_in if block_index == 0 else dim_out,
                    dim_out,
                    dim_inner,
                    stride=first_stride if block_index == 0 else 1,
                    dilation=dilation,
                    num_groups=num_groups,
                    stride_1x1=stride_1x1,
                    norm=norm,
                    gn=gn,
                )
            )
        super().__init__(*blocks)
        self.stage_index = stage_index
        self.dim_out = dim_out

    @property
    def blob_name(self) -> str:
        return f"res{self.stage_index}_{len(self) - 1}_sum"

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping: dict[str, str] = {}
        orphans: list[str] = []
        for block_index, block in enumerate(self):
            block_mapping, block_orphans = block.detectron_blob_mapping(f"res{self.stage_index}_{block_index}")
            mapping |= add_prefix(block_mapping, str(block_index))
            orphans += block_orphans
        return mapping, orphans


def res5_head_stage(
    dim_in: int = 1024,
    num_groups: int = 1,
    width_per_group: int = 64,
    stride_init: int = 2,
    dilation: int = 1,
    stride_1x1: bool = True,
    norm: str = "AffineChannel",
    gn: GroupNormSettings = DEFAULT_GN,
    num_blocks: int = 3,
) -> ResStage:
    """The res5 stage that Detectron's ``ResNet_roi_conv5_head`` runs on pooled RoIs.

    Detectron builds it with ``stride_init = FAST_RCNN.ROI_XFORM_RESOLUTION // 7`` (2 for
    14x14 RoI features, giving 7x7) and dilation 1; the head then average-pools with a
    7x7 kernel (``res5_pool``) to a ``[R, 2048, 1, 1]`` feature. As in Detectron the first
    block strides by ``stride_init`` only when ``dilation == 1``. Blob names are
    ``res5_<i>_...`` so the same Detectron weights load into the head.
    """
    return ResStage(
        5,
        num_blocks,
        dim_in,
        stage_dim_out(5),
        stage_dim_inner(5, num_groups, width_per_group),
        first_stride=stride_init if dilation == 1 else 1,
        dilation=dilation,
        num_groups=num_groups,
        stride_1x1=stride_1x1,
        norm=norm,
        gn=gn,
    )
