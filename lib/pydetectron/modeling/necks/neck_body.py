"""A conv body made of any bottom-up body and a neck (list of maps in, list of maps out).

The bottom-up body follows the body contract (named maps + ``output_shape()``); the neck
takes the maps named by ``in_features`` (finest first) and returns its own list, finest
first. Outputs are named by pyramid level (``p2``, ``p3``, ...), so the RPN and RoI heads
find them by level whatever the body is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...nn import WeightMapping, prefix_both, submodule_mappings
from ..levels import ShapeSpec, level_of_stride, pyramid_name


def neck_output_strides(neck: nn.Module, input_strides: Sequence[int], num_outputs: int) -> list[int]:
    """Strides of a neck's outputs: the neck's own rule if it has `output_strides`, else output i
    has input i's stride and outputs beyond the inputs double the last stride."""
    if hasattr(neck, "output_strides"):
        return [int(s) for s in neck.output_strides(list(input_strides))]
    strides = list(input_strides[:num_outputs])
    while len(strides) < num_outputs:
        strides.append(strides[-1] * 2)
    return strides


class NeckBody(nn.Module):
    """``bottom_up`` followed by ``neck``; returns ``{"p<level>": map}`` finest first.

    Args:
        bottom_up: a body with ``output_shape()`` returning the maps ``in_features`` name.
        neck: module called with the list of those maps; has ``out_channels`` (every output)
            and ``num_outputs``, and optionally ``output_strides(input_strides)``.
        in_features: bottom-up maps fed to the neck, finest first.
        out_features: pyramid names to return (default: all the neck's outputs).
    """

    def __init__(
        self,
        bottom_up: nn.Module,
        neck: nn.Module,
        in_features: Sequence[str],
        out_features: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        shapes = bottom_up.output_shape()
        missing = [name for name in in_features if name not in shapes]
        if missing:
            raise ValueError(f"NeckBody: the bottom-up body has no maps {missing}; it has {list(shapes)}")
        self.backbone = bottom_up
        self.neck = neck
        self.in_features = list(in_features)
        strides = neck_output_strides(neck, [shapes[name].stride for name in in_features], int(neck.num_outputs))
        self._all_outputs = [pyramid_name(level_of_stride(s)) for s in strides]
        self._shapes = {name: ShapeSpec(int(neck.out_channels), s) for name, s in zip(self._all_outputs, strides)}
        self.out_features = list(out_features) if out_features is not None else list(self._all_outputs)
        unknown = [name for name in self.out_features if name not in self._shapes]
        if unknown:
            raise ValueError(f"NeckBody: out_features {unknown} are not among the neck's outputs {self._all_outputs}")

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {name: self._shapes[name] for name in self._all_outputs if name in self.out_features}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        outputs = self.neck([features[name] for name in self.in_features])
        if len(outputs) != len(self._all_outputs):
            raise RuntimeError(f"the neck returned {len(outputs)} maps, its declared outputs are {self._all_outputs}")
        return {name: out for name, out in zip(self._all_outputs, outputs) if name in self.out_features}

    def detectron_weight_mapping(self) -> WeightMapping:
        return submodule_mappings({"backbone": self.backbone, "neck": self.neck})

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names in a torchvision ``BackboneWithFPN`` (``body.*``, ``fpn.*``) for our weights."""
        mapping = prefix_both(self.backbone.torchvision_weight_mapping(), "backbone", "body")
        return mapping | prefix_both(self.neck.torchvision_weight_mapping(), "neck", "fpn")
