"""Darknet family: Darknet-19/53 (YOLOv2/v3), CSPDarknet-53 (CSPNet/YOLOv4), YOLOv5's backbone.

All activations are ReLU and norms BatchNorm2d with PyTorch defaults (the vision-toolbox
variants). State-dict names follow vision-toolbox (`stem`, `stages.<i>.conv`,
`stages.<i>.blocks.<j>.conv1`, ...), so its released weight files load with `pretrained=`.

- Darknet-19/53, CSPDarknet-53: a 3x3 stem conv with 32 channels at stride 1 (not returned),
  then five stages of 64..1024 channels, each opened by a 3x3 stride-2 conv: maps at
  strides 2..32. Darknet-19 is YOLOv2's network with YOLOv3's changes (a stride-2 conv in
  place of max pool + conv, residual blocks); its first stage is the strided conv alone.
- CSP stages (CSPDarknet-53, YOLOv5) split the strided conv's output with two 1x1 convs
  to half width; one half goes through the residual blocks, the halves are concatenated
  (shortcut half first) and mixed by a 1x1 conv.
- Darknet-YOLOv5{n,s,m,l,x}: Ultralytics YOLOv5's backbone up to model.8 (no SPPF): a 6x6
  stride-2 stem (returned, stride 2) then four CSP stages with (3, 6, 9, 3) blocks and
  128..1024 channels, scaled by depth x width multipliers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..base import Backbone
from ..registry import register_backbone
from .layers import ConvNormAct, stem_and_stage_maps


class DarknetBlock(nn.Module):
    """Residual block: 1x1 conv to `expansion` x channels, 3x3 conv back, identity shortcut."""

    def __init__(self, channels: int, expansion: float = 0.5):
        super().__init__()
        hidden = int(channels * expansion)
        self.conv1 = ConvNormAct(channels, hidden, 1)
        self.conv2 = ConvNormAct(hidden, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class DarknetStage(nn.Sequential):
    """A 3x3 stride-2 conv followed by `num_blocks` residual blocks (Darknet-53)."""

    def __init__(self, num_blocks: int, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvNormAct(in_channels, out_channels, 3, stride=2)
        self.blocks = nn.Sequential(*[DarknetBlock(out_channels) for _ in range(num_blocks)])


class CSPDarknetStage(nn.Module):
    """Cross-stage-partial stage: strided conv, split by two 1x1 convs, blocks on one half.

    out = out_conv(cat([conv1(y), blocks(conv2(y))])) with y = conv(x). Ultralytics' C3
    names these cv2, cv1, m and cv3 and concatenates the block half first
    (tools/convert_yolov5_weights.py reorders `out_conv` accordingly).
    """

    def __init__(self, num_blocks: int, in_channels: int, out_channels: int):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"CSPDarknetStage needs at least one block, got num_blocks={num_blocks}")
        half = out_channels // 2
        self.conv = ConvNormAct(in_channels, out_channels, 3, stride=2)
        self.conv1 = ConvNormAct(out_channels, half, 1)
        self.conv2 = ConvNormAct(out_channels, half, 1)
        self.blocks = nn.Sequential(*[DarknetBlock(half, expansion=1.0) for _ in range(num_blocks)])
        self.out_conv = ConvNormAct(2 * half, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.out_conv(torch.cat([self.conv1(y), self.blocks(self.conv2(y))], dim=1))


class Darknet(Backbone):
    """Darknet-19/53 or CSPDarknet-53: stride-1 stem, five stride-2 stages (maps at strides 2..32).

    Args:
        stem_channels: width of the 3x3 stem conv.
        num_blocks: residual blocks per stage; 0 makes the stage its strided conv alone.
        channels: output width of each stage.
        csp: cross-stage-partial stages (CSPDarknet) instead of plain ones.
    """

    def __init__(
        self,
        stem_channels: int = 32,
        num_blocks: Sequence[int] = (1, 2, 8, 8, 4),
        channels: Sequence[int] = (64, 128, 256, 512, 1024),
        csp: bool = False,
    ):
        super().__init__()
        if len(num_blocks) != 5 or len(channels) != 5:
            raise ValueError(f"Darknet needs 5 stages, got num_blocks={num_blocks}, channels={channels}")
        self.out_channels_list = tuple(int(c) for c in channels)
        self.stride = 32
        self.stem = ConvNormAct(3, stem_channels, 3)
        self.stages = nn.ModuleList()
        in_channels = stem_channels
        for n, out_channels in zip(num_blocks, channels):
            if n == 0:
                stage = ConvNormAct(in_channels, out_channels, 3, stride=2)
            elif csp:
                stage = CSPDarknetStage(n, in_channels, out_channels)
            else:
                stage = DarknetStage(n, in_channels, out_channels)
            self.stages.append(stage)
            in_channels = out_channels

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stem_and_stage_maps(self, x, self.stages, keep_stem=False)


# YOLOv5 depth and width multipliers per size (Ultralytics' depth_multiple x width_multiple).
YOLOV5_SCALES = {"n": (1 / 3, 1 / 4), "s": (1 / 3, 1 / 2), "m": (2 / 3, 3 / 4), "l": (1.0, 1.0), "x": (4 / 3, 5 / 4)}
YOLOV5_BASE_BLOCKS = (3, 6, 9, 3)
YOLOV5_BASE_CHANNELS = (64, 128, 256, 512, 1024)


def _scaled_width(channels: int, multiplier: float, divisor: int = 8) -> int:
    """Ultralytics' make_divisible: channels x multiplier rounded up to a multiple of `divisor`."""
    return int(-(-channels * multiplier // divisor) * divisor)


class DarknetYOLOv5(Backbone):
    """YOLOv5's backbone (Ultralytics model.0..model.8, no SPPF) with ReLU and default BN.

    Args:
        depth_multiple: scales the (3, 6, 9, 3) blocks per CSP stage (rounded, at least 1).
        width_multiple: scales the (64, 128, 256, 512, 1024) widths (rounded up to 8).
    """

    def __init__(self, depth_multiple: float = 1.0, width_multiple: float = 1.0):
        super().__init__()
        widths = [_scaled_width(c, width_multiple) for c in YOLOV5_BASE_CHANNELS]
        blocks = [max(round(n * depth_multiple), 1) for n in YOLOV5_BASE_BLOCKS]
        self.out_channels_list = tuple(widths)
        self.stride = 32
        self.stem = ConvNormAct(3, widths[0], 6, stride=2)
        self.stages = nn.ModuleList(
            CSPDarknetStage(n, c_in, c_out) for n, c_in, c_out in zip(blocks, widths[:-1], widths[1:])
        )

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stem_and_stage_maps(self, x, self.stages, keep_stem=True)


def _build(model: Backbone, pretrained: str | None) -> Backbone:
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model


@register_backbone()
def darknet19(pretrained: str | None = None, **kwargs) -> Darknet:
    """Darknet-19 (YOLOv2 with strided convs and residuals): 19.82M parameters."""
    return _build(Darknet(num_blocks=(0, 1, 1, 2, 2), **kwargs), pretrained)


@register_backbone()
def darknet53(pretrained: str | None = None, **kwargs) -> Darknet:
    """Darknet-53 (YOLOv3): 40.58M parameters."""
    return _build(Darknet(num_blocks=(1, 2, 8, 8, 4), **kwargs), pretrained)


@register_backbone()
def cspdarknet53(pretrained: str | None = None, **kwargs) -> Darknet:
    """CSPDarknet-53 (CSPNet, YOLOv4): 26.24M parameters."""
    return _build(Darknet(num_blocks=(1, 2, 8, 8, 4), csp=True, **kwargs), pretrained)


def _yolov5(size: str, pretrained: str | None, kwargs: dict) -> DarknetYOLOv5:
    depth, width = YOLOV5_SCALES[size]
    return _build(DarknetYOLOv5(depth, width, **kwargs), pretrained)


@register_backbone()
def darknet_yolov5n(pretrained: str | None = None, **kwargs) -> DarknetYOLOv5:
    """YOLOv5n backbone (depth x1/3, width x1/4): 0.88M parameters."""
    return _yolov5("n", pretrained, kwargs)


@register_backbone()
def darknet_yolov5s(pretrained: str | None = None, **kwargs) -> DarknetYOLOv5:
    """YOLOv5s backbone (depth x1/3, width x1/2): 3.51M parameters."""
    return _yolov5("s", pretrained, kwargs)


@register_backbone()
def darknet_yolov5m(pretrained: str | None = None, **kwargs) -> DarknetYOLOv5:
    """YOLOv5m backbone (depth x2/3, width x3/4): 10.69M parameters."""
    return _yolov5("m", pretrained, kwargs)


@register_backbone()
def darknet_yolov5l(pretrained: str | None = None, **kwargs) -> DarknetYOLOv5:
    """YOLOv5l backbone (depth x1, width x1): 23.96M parameters."""
    return _yolov5("l", pretrained, kwargs)


@register_backbone()
def darknet_yolov5x(pretrained: str | None = None, **kwargs) -> DarknetYOLOv5:
    """YOLOv5x backbone (depth x4/3, width x5/4): 45.18M parameters."""
    return _yolov5("x", pretrained, kwargs)
