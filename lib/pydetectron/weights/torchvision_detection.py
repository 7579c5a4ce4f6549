"""torchvision detection checkpoints (faster/mask/keypoint R-CNN, RetinaNet) -> our models.

The model's modules say which torchvision names their weights have
(`torchvision_weight_mapping()`, composed from the body, RPN and RoI branches); this module
only matches those names against a state dict, accepting torchvision's older spellings.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision renamed the RPN head's conv, and the RetinaNet head's towers (`conv.0`, `conv.2`,
# ... -> `conv.0.0`, `conv.1.0`, ...), when they became Conv2dNormActivation (v2 models).
_OLD_NAMES = {"rpn.head.conv.0.0.weight": "rpn.head.conv.weight", "rpn.head.conv.0.0.bias": "rpn.head.conv.bias"}
_OLD_NAMES |= {
    f"head.{branch}.conv.{i}.0.{tensor}": f"head.{branch}.conv.{2 * i}.{tensor}"
    for branch in ("classification_head", "regression_head")
    for i in range(4)
    for tensor in ("weight", "bias")
}

# Head prefixes of torchvision's detection models: *rcnn (RPN) and RetinaNet.
_HEAD_PREFIXES = ("rpn.head.", "head.classification_head.")


def looks_like_torchvision_detection(state_dict: dict) -> bool:
    """True for a torchvision *rcnn (backbone.body.*, rpn.head.*, roi_heads.*) or RetinaNet
    (backbone.body.*, head.classification_head.*, head.regression_head.*) state dict."""
    keys = [k for k in state_dict if isinstance(k, str)]
    return any(k.startswith("backbone.body.") for k in keys) and any(k.startswith(_HEAD_PREFIXES) for k in keys)


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
