"""torchvision detection checkpoints (fasterrcnn_resnet50_fpn) -> our Generalized R-CNN.

The model's own modules say which torchvision names their weights have
(`torchvision_weight_mapping`); this module only routes torchvision's prefixes
(backbone.body, backbone.fpn, rpn.head, roi_heads) to our submodules.
"""

from __future__ import annotations

import torch
from torch import nn

# RPN head and box head/predictor names (ours relative to the module -> torchvision's).
_RPN_HEAD = {
    "conv.weight": ("conv.0.0.weight", "conv.weight"),
    "conv.bias": ("conv.0.0.bias", "conv.bias"),
    "cls_logits.weight": ("cls_logits.weight",),
    "cls_logits.bias": ("cls_logits.bias",),
    "bbox_pred.weight": ("bbox_pred.weight",),
    "bbox_pred.bias": ("bbox_pred.bias",),
}
_BOX_HEAD = {f"{layer}.{t}": (f"{layer}.{t}",) for layer in ("fc6", "fc7") for t in ("weight", "bias")}
_BOX_OUTPUTS = {f"{layer}.{t}": (f"{layer}.{t}",) for layer in ("cls_score", "bbox_pred") for t in ("weight", "bias")}


def looks_like_torchvision_detection(state_dict: dict) -> bool:
    """True for a torchvision *rcnn state dict (backbone.body.*, rpn.head.*, roi_heads.*)."""
    keys = list(state_dict)
    return any(k.startswith("backbone.body.") for k in keys) and any(k.startswith("rpn.head.") for k in keys)


def _candidates(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Our state-dict name -> acceptable torchvision names, for every mapped tensor."""
    body = model.body
    backbone = getattr(body, "backbone", body)
    table: dict[str, tuple[str, ...]] = {}
    prefix = "body.backbone." if hasattr(body, "backbone") else "body."
    for ours, theirs in backbone.torchvision_weight_mapping().items():
        table[prefix + ours] = (f"backbone.body.{theirs}",)
    if hasattr(body, "fpn"):
        for ours, theirs in body.fpn.torchvision_weight_mapping().items():
            table[f"body.fpn.{ours}"] = (f"backbone.fpn.{theirs}",)
    for ours, theirs in _RPN_HEAD.items():
        table[f"rpn.head.{ours}"] = tuple(f"rpn.head.{t}" for t in theirs)
    if model.box_head is not None:
        for ours, theirs in _BOX_HEAD.items():
            table[f"box_head.{ours}"] = tuple(f"roi_heads.box_head.{t}" for t in theirs)
        for ours, theirs in _BOX_OUTPUTS.items():
            table[f"box_outputs.{ours}"] = tuple(f"roi_heads.box_predictor.{t}" for t in theirs)
    return table


def convert_torchvision_detection(
    state_dict: dict[str, torch.Tensor], model: nn.Module
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(our state dict, our tensors not found, torchvision tensors not used)."""
    converted: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    used: set[str] = set()
    for ours, names in _candidates(model).items():
        source = next((n for n in names if n in state_dict), None)
        if source is None:
            missing.append(ours)
            continue
        converted[ours] = state_dict[source]
        used.add(source)
    unused = sorted(k for k in state_dict if k not in used)
    return converted, missing, unused
