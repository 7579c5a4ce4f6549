"""Rename Darknet-YOLOv5 weights to Ultralytics YOLOv5's layout (model.0 .. model.8) and back.

Ours                               Ultralytics (backbone part, no SPPF)
stem.{conv,norm}                   model.0.{conv,bn}
stages.<i>.conv                    model.<2i+1>                (3x3 stride-2 Conv)
stages.<i>.conv1                   model.<2i+2>.cv2            (C3 shortcut half)
stages.<i>.conv2                   model.<2i+2>.cv1            (C3 half through the blocks)
stages.<i>.blocks.<j>.conv<k>      model.<2i+2>.m.<j>.cv<k>
stages.<i>.out_conv                model.<2i+2>.cv3

Our CSP stage concatenates [conv1 half, blocks half] while C3 concatenates
[m(cv1) half, cv2 half], so the input channels of out_conv / cv3 swap halves in the
conversion: the converted network computes the same function.
"""

from __future__ import annotations

import re

import torch

ULTRALYTICS_LAST_BACKBONE_INDEX = 8

_OURS = re.compile(r"^(stem|stages\.(\d+)\.(conv|conv1|conv2|out_conv|blocks\.(\d+)\.conv([12])))\.(conv|norm)\.(.+)$")
_THEIRS = re.compile(r"^model\.(\d+)\.(?:(cv[123])\.|m\.(\d+)\.cv([12])\.)?(conv|bn)\.(.+)$")
_C3_NAMES = {"conv1": "cv2", "conv2": "cv1", "out_conv": "cv3"}
_OUR_C3_NAMES = {v: k for k, v in _C3_NAMES.items()}


def _swap_input_halves(weight: torch.Tensor) -> torch.Tensor:
    half = weight.shape[1] // 2
    return torch.cat([weight[:, half:], weight[:, :half]], dim=1)


def to_ultralytics(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our `darknet_yolov5*` state dict renamed to Ultralytics' `model.0..8` names."""
    converted = {}
    for key, value in state.items():
        match = _OURS.match(key)
        if match is None:
            raise ValueError(f"not a Darknet-YOLOv5 weight name: {key!r}")
        unit, stage, part, block, conv_index, layer, leaf = match.groups()
        layer = "bn" if layer == "norm" else "conv"
        if unit == "stem":
            prefix = "model.0"
        elif part == "conv":
            prefix = f"model.{2 * int(stage) + 1}"
        elif block is not None:
            prefix = f"model.{2 * int(stage) + 2}.m.{block}.cv{conv_index}"
        else:
            prefix = f"model.{2 * int(stage) + 2}.{_C3_NAMES[part]}"
        if part == "out_conv" and layer == "conv" and leaf == "weight":
            value = _swap_input_halves(value)
        converted[f"{prefix}.{layer}.{leaf}"] = value
    return converted


def from_ultralytics(state: dict[str, torch.Tensor], skip_rest: bool = False) -> dict[str, torch.Tensor]:
    """Ultralytics YOLOv5 weights (model.0..8) renamed to our `darknet_yolov5*` names.

    Entries past model.8 (SPPF, neck, head) raise a ValueError unless `skip_rest`.
    """
    converted = {}
    for key, value in state.items():
        match = _THEIRS.match(key)
        index = int(key.split(".")[1]) if key.startswith("model.") and key.split(".")[1].isdigit() else None
        if index is not None and index > ULTRALYTICS_LAST_BACKBONE_INDEX and skip_rest:
            continue
        if match is None or index is None or index > ULTRALYTICS_LAST_BACKBONE_INDEX:
            raise ValueError(
                f"not a YOLOv5 backbone weight name (model.0..model.{ULTRALYTICS_LAST_BACKBONE_INDEX}): {key!r}"
            )
        _, c3_part, block, conv_index, layer, leaf = match.groups()
        layer = "norm" if layer == "bn" else "conv"
        if index == 0:
            prefix = "stem"
        elif index % 2 == 1:
            if c3_part or block:
                raise ValueError(f"model.{index} is a plain Conv in YOLOv5, got {key!r}")
            prefix = f"stages.{(index - 1) // 2}.conv"
        else:
            stage = (index - 2) // 2
            if block is not None:
                prefix = f"stages.{stage}.blocks.{block}.conv{conv_index}"
            elif c3_part is not None:
                prefix = f"stages.{stage}.{_OUR_C3_NAMES[c3_part]}"
            else:
                raise ValueError(f"model.{index} is a C3 block in YOLOv5, got {key!r}")
        if c3_part == "cv3" and layer == "conv" and leaf == "weight":
            value = _swap_input_halves(value)
        converted[f"{prefix}.{layer}.{leaf}"] = value
    return converted
