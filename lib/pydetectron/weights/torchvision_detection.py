"""torchvision detection checkpoints (faster/mask/keypoint R-CNN) -> our Generalized R-CNN.

The model's modules say which torchvision names their weights have
(`torchvision_weight_mapping()`, composed from the body, RPN and RoI branches); this module
only matches those names against a state dict, accepting torchvision's older spellings.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision renamed the RPN head's conv when it became a Conv2dNormActivation (v2 models).
_OLD_NAMES = {"rpn.head.conv.0.0.weight": "rpn.head.conv.weight", "rpn.head.conv.0.0.bias": "rpn.head.conv.bias"}


def looks_like_torchvision_detection(state_dict: dict) -> bool:
    """True for a torchvision *rcnn state dict (backbone.body.*, rpn.head.*, roi_heads.*)."""
    keys = list(state_dict)
    return any(k.startswith("backbone.body.") for k in keys) and any(k.startswith("rpn.head.") for k in keys)


def convert_torchvision_detection(
    state_dict: dict[str, torch.Tensor], model: nn.Module
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(our state dict, our tensors not found, torchvision tensors not used)."""
    if not hasattr(model, "torchvision_weight_mapping"):
        raise ValueError(f"{type(model).__name__} has no torchvision weight names")
    converted: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    used: set[str] = set()
    for ours, theirs in model.torchvision_weight_mapping().items():
        source = theirs if theirs in state_dict else _OLD_NAMES.get(theirs)
        if source is None or source not in state_dict:
            missing.append(ours)
            continue
        converted[ours] = state_dict[source]
        used.add(source)
    unused = sorted(k for k in state_dict if k not in used)
    return converted, missing, unused
