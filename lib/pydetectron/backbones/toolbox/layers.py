"""Building blocks shared by the toolbox backbones and the `pydetectron.necks` modules."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...nn import FrozenBatchNorm2d, make_norm


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> ReLU, the unit every toolbox backbone and neck is built from.

    Padding is ceil((kernel_size - stride) / 2): "same" for odd kernels at stride 1, and an
    output of ceil(size / stride) for the 3x3 stride-2 convs (size // 2 for the 6x6 stem of
    YOLOv5). `norm` is a kind of `pydetectron.nn.make_norm` ("BN" = BatchNorm2d with PyTorch
    defaults, "GN", "FrozenBN", "AffineChannel") or None for no norm (the conv then has a
    bias). Children are named `conv`, `norm`, `act`, so state-dict names are stable.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm: str | None = "BN",
        act: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=max(math.ceil((kernel_size - stride) / 2), 0),
            groups=groups,
            bias=norm is None,
        )
        self.norm = make_norm(norm, out_channels) if norm is not None else nn.Identity()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)


class SeparableConvNormAct(nn.Sequential):
    """Depthwise 3x3 conv followed by a pointwise ConvNormAct (EfficientDet's BiFPN conv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, norm: str | None = "BN"):
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels, bias=False
        )
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, norm=norm)
        nn.init.kaiming_normal_(self.depthwise.weight, mode="fan_out", nonlinearity="linear")


class EffectiveSqueezeExcitation(nn.Module):
    """eSE of VoVNetV2: global average pool, one 1x1 conv (with bias), hard-sigmoid gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.linear(x.mean(dim=(2, 3), keepdim=True)))


def check_image_batch(x: torch.Tensor, who: str) -> None:
    """Raise a clear error unless `x` is an [N, 3, H, W] floating-point batch."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: expected an image batch [N, 3, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{who}: expected a floating-point image batch, got dtype {x.dtype}")


def stem_and_stage_maps(
    backbone: nn.Module, x: torch.Tensor, stages: Sequence[nn.Module], keep_stem: bool
) -> list[torch.Tensor]:
    """Check the image batch, run `backbone.stem` then each of `stages`; the stage outputs,
    finest first, after the stem's own output when `keep_stem`."""
    check_image_batch(x, type(backbone).__name__)
    x = backbone.stem(x)
    maps = [x] if keep_stem else []
    for stage in stages:
        x = stage(x)
        maps.append(x)
    return maps


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in `module` by a FrozenBatchNorm2d with its statistics (in place).

    Detection fine-tuning with a few images per GPU keeps ImageNet statistics this way;
    the state-dict names do not change, so weights load before or after freezing.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            tensors = list(child.parameters()) + list(child.buffers())
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            if tensors:
                frozen = frozen.to(tensors[0].device)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.running_mean is not None:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module
