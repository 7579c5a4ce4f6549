"""torchvision classification networks as multi-level backbones (maps at strides 2..32).

Each wrapper keeps torchvision's modules under torchvision's names, minus the classifier
(`fc`, `classifier`) and the final pooling, and returns exactly torchvision's
intermediate features:

- ResNet / ResNeXt / Wide ResNet: the stem's ReLU (stride 2, before the max pool), then
  layer1..layer4 (strides 4..32).
- RegNetX / RegNetY: `stem`, then `trunk_output.block1..block4`.
- MobileNetV2 / MobileNetV3 / EfficientNet: for each stride-2 inverted-residual block after
  the stem, the output of its 1x1 expansion conv (MobileNetV2 paper section 6.2,
  MobileNetV3 paper section 6.3), i.e. the map just before the resolution drops; a block
  without an expansion conv (MobileNetV3-small's first) gives its input. The last map is
  the output of `features` (after the final 1x1 conv).

`pretrained` is a local file: this backbone's own state dict, or a torchvision
classification checkpoint (its classifier tensors are ignored; everything else must
match). Extra keyword arguments go to the torchvision constructor (e.g.
`norm_layer=torchvision.ops.FrozenBatchNorm2d`); `weights` is refused, nothing is
downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torchvision import models as tv

from ..base import Backbone
from ..registry import register_backbone
from .layers import check_image_batch


def _last_conv(module: nn.Module) -> nn.Conv2d:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(module).__name__} holds no Conv2d")
    return convs[-1]


def _max_stride(module: nn.Module) -> int:
    return max(m.stride[0] for m in module.modules() if isinstance(m, nn.Conv2d))


def _check_kwargs(name: str, kwargs: dict) -> dict:
    for key in ("weights", "pretrained", "num_classes"):
        if key in kwargs:
            raise ValueError(
                f"{name}: `{key}` is not accepted; pass a local weights file as pretrained= "
                "(a torchvision checkpoint works, its classifier is ignored)"
            )
    return kwargs


class TorchvisionBackbone(Backbone):
    """Common part of the wrappers: the torchvision classifier head is not kept."""

    # torchvision checkpoint entries that belong to the dropped classifier head.
    ignored_pretrained_prefixes: tuple[str, ...] = ("fc.", "classifier.")


class ResNetBackbone(TorchvisionBackbone):
    """torchvision ResNet/ResNeXt/Wide ResNet: relu (stride 2), layer1..layer4."""

    def __init__(self, model: tv.ResNet):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = model.conv1, model.bn1, model.relu, model.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = model.layer1, model.layer2, model.layer3, model.layer4
        layers = (self.layer1, self.layer2, self.layer3, self.layer4)
        self.out_channels_list = (self.conv1.out_channels, *(_last_conv(layer[-1]).out_channels for layer in layers))
        self.stride = 32

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_batch(x, type(self).__name__)
        x = self.relu(self.bn1(self.conv1(x)))
        maps = [x]
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            maps.append(x)
        return maps


class RegNetBackbone(TorchvisionBackbone):
    """torchvision RegNetX/RegNetY: stem, trunk_output.block1..block4."""

    def __init__(self, model: tv.RegNet):
        super().__init__()
        self.stem, self.trunk_output = model.stem, model.trunk_output
        if len(self.trunk_output) != 4:
            raise ValueError(f"RegNetBackbone needs 4 stages, got {len(self.trunk_output)}")
        stages = [_last_conv(stage[-1]).out_channels for stage in self.trunk_output]
        self.out_channels_list = (_last_conv(self.stem).out_channels, *stages)
        self.stride = 32

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_batch(x, type(self).__name__)
        x = self.stem(x)
        maps = [x]
        for stage in self.trunk_output:
            x = stage(x)
            maps.append(x)
        return maps


def _inner_sequence(unit: nn.Module) -> nn.Sequential | None:
    """The layer sequence of an inverted-residual block (`conv` in MobileNetV2, `block` otherwise)."""
    for name in ("block", "conv"):
        inner = getattr(unit, name, None)
        if isinstance(inner, nn.Sequential) and hasattr(unit, "use_res_connect"):
            return inner
    return None


def _units(features: nn.Sequential) -> Iterator[nn.Module]:
    """Blocks of `features` in execution order, EfficientNet's per-stage Sequentials flattened."""
    for module in features:
        if _inner_sequence(module) is None and isinstance(module, nn.Sequential) and len(module) > 0:
            if all(_inner_sequence(block) is not None for block in module):
                yield from module
                continue
        yield module


def _has_expansion(inner: nn.Sequential) -> bool:
    """Whether the block opens with a 1x1 (expansion) conv rather than its depthwise conv."""
    first = next(m for m in inner[0].modules() if isinstance(m, nn.Conv2d))
    return first.kernel_size == (1, 1) and first.groups == 1


class InvertedResidualBackbone(TorchvisionBackbone):
    """torchvision MobileNetV2/V3 and EfficientNet: expansion outputs of the strided blocks.

    For each stride-2 block after the stem the map is taken after its 1x1 expansion conv
    (or at its input when it has none); the fifth map is the output of `features`.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.features = model.features
        units = list(_units(self.features))
        self._taps: dict[int, bool] = {}
        channels = []
        previous_channels = _last_conv(units[0]).out_channels
        for index, unit in enumerate(units[1:], start=1):
            inner = _inner_sequence(unit)
            if inner is not None and _max_stride(unit) == 2:
                expands = _has_expansion(inner)
                self._taps[index] = expands
                channels.append(_last_conv(inner[0]).out_channels if expands else previous_channels)
            previous_channels = _last_conv(unit).out_channels
        if len(self._taps) != 4 or _max_stride(units[0]) != 2:
            raise ValueError(
                f"{type(model).__name__}: expected a stride-2 stem and 4 stride-2 blocks, "
                f"found {len(self._taps)} strided blocks (dilation changes the strides)"
            )
        self.out_channels_list = (*channels, previous_channels)
        self.stride = 32

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_batch(x, type(self).__name__)
        maps = []
        for index, unit in enumerate(_units(self.features)):
            expands = self._taps.get(index)
            if expands is None:
                x = unit(x)
            elif expands:
                # A stride-2 block has no residual connection: its output is inner[1:](inner[0](x)).
                inner = _inner_sequence(unit)
                x = inner[0](x)
                maps.append(x)
                x = inner[1:](x)
            else:
                maps.append(x)
                x = unit(x)
        maps.append(x)
        return maps


def _register(name: str, family: type[TorchvisionBackbone], tv_constructor: Callable[..., nn.Module]) -> None:
    def constructor(pretrained: str | None = None, **kwargs) -> TorchvisionBackbone:
        model = family(tv_constructor(weights=None, **_check_kwargs(name, kwargs)))
        if pretrained is not None:
            model.load_pretrained(pretrained)
        return model

    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = (
        f"torchvision's {tv_constructor.__name__} as a backbone ({family.__name__}); "
        "`pretrained`: a local state dict or torchvision checkpoint."
    )
    register_backbone(name)(constructor)


# Our name -> (wrapper, torchvision constructor).
TORCHVISION_BACKBONES: dict[str, tuple[type[TorchvisionBackbone], Callable[..., nn.Module]]] = {
    "resnet18": (ResNetBackbone, tv.resnet18),
    "resnet34": (ResNetBackbone, tv.resnet34),
    "resnet50": (ResNetBackbone, tv.resnet50),
    "resnet101": (ResNetBackbone, tv.resnet101),
    "resnet152": (ResNetBackbone, tv.resnet152),
    "resnext50_32x4d": (ResNetBackbone, tv.resnext50_32x4d),
    "resnext101_32x8d": (ResNetBackbone, tv.resnext101_32x8d),
    "wide_resnet50_2": (ResNetBackbone, tv.wide_resnet50_2),
    "wide_resnet101_2": (ResNetBackbone, tv.wide_resnet101_2),
    **{
        f"regnet{kind}_{size}": (RegNetBackbone, getattr(tv, f"regnet_{kind}_{size}"))
        for kind in ("x", "y")
        for size in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")
    },
    "mobilenet_v2": (InvertedResidualBackbone, tv.mobilenet_v2),
    "mobilenet_v3_large": (InvertedResidualBackbone, tv.mobilenet_v3_large),
    "mobilenet_v3_small": (InvertedResidualBackbone, tv.mobilenet_v3_small),
    **{f"efficientnet_b{i}": (InvertedResidualBackbone, getattr(tv, f"efficientnet_b{i}")) for i in range(8)},
}

for _name, (_family, _tv_constructor) in TORCHVISION_BACKBONES.items():
    _register(_name, _family, _tv_constructor)
