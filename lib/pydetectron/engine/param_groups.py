"""AdamW parameter groups for transformer and ConvNeXt bodies (ViTDet / Swin / ConvNeXt recipes).

- No weight decay on norms, biases and every other 1-D parameter (LayerScale, GRN), on
  position embeddings and tokens (`pos_embed`, `cls_token`, `reg_token`, `dist_token`,
  `mask_token`, the MAP query `latent`) and on relative position tables
  (`relative_position_bias_table`, `rel_pos_h`, `rel_pos_w`), nor on any name a module lists
  in its `no_weight_decay()` (timm's convention, names relative to that module).
- Layer-wise LR decay: a parameter at depth `layer_id` gets LR x decay_rate^(num_layers - layer_id).
  Depths come from the ported backbone inside the model (`lr_layer_id(name)`: 0 for the
  patch / position embeddings and tokens, i + 1 for block i, ... `num_lr_layers` after the
  last block); everything outside it (necks, heads) is at `num_layers` (LR x 1). With
  num_layers = depth + 1 this is MAE / BEiT's `param_groups_lrd` and ViTDet's
  `get_vit_lr_decay_rate` (ViT-B: 13 = 12 blocks + 1).

Each group is a dict `torch.optim.AdamW(groups)` takes as is: `params`, `param_names`, `lr`,
`weight_decay`, `betas`, `eps`, plus `name`, `lr_mult` (what the engine's LR updater
multiplies the scheduled LR by) and `layer_id`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

NO_DECAY_NAMES = frozenset(
    {
        "pos_embed",
        "absolute_pos_embed",
        "cls_token",
        "reg_token",
        "dist_token",
        "mask_token",
        "latent",
        "relative_position_bias_table",
        "rel_pos_h",
        "rel_pos_w",
    }
)


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of the trainable parameters of `model` that AdamW should not decay (rules above)."""
    listed: set[str] = set()
    for prefix, module in model.named_modules():
        declared = getattr(module, "no_weight_decay", None)
        if callable(declared):
            listed |= {f"{prefix}.{n}" if prefix else n for n in declared()}
    names = set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or name.rsplit(".", 1)[-1] in NO_DECAY_NAMES or name in listed:
            names.add(name)
    return names


def weight_decay_param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> list[dict[str, Any]]:
    """Plain AdamW groups: `decay` (weight decay `weight_decay`) and `no_decay` (0), both at `lr`."""
    skip = no_weight_decay_names(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    groups = []
    for group_name, decay in (("decay", weight_decay), ("no_decay", 0.0)):
        members = [(n, p) for n, p in named if (n in skip) == (group_name == "no_decay")]
        if members:
            groups.append(_group(group_name, members, lr, 1.0, decay, betas, eps, layer_id=None))
    return groups


def layer_wise_lr_decay_param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    decay_rate: float,
    num_layers: int | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    layer_id_fn: Callable[[str], int] | None = None,
) -> list[dict[str, Any]]:
    """AdamW groups with LR x decay_rate^(num_layers - layer_id) and no decay where the rules say.

    `num_layers` defaults to the backbone's `num_lr_layers`; `layer_id_fn(name)` (a full
    parameter name -> depth) replaces the backbone's depths, e.g. for a model without a
    ported backbone.
    """
    if not 0.0 < decay_rate <= 1.0:
        raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}")
    if layer_id_fn is None:
        prefix, backbone = _find_backbone(model)
        if num_layers is None:
            num_layers = int(backbone.num_lr_layers)
        last = num_layers

        def layer_id_fn(name: str) -> int:
            if not name.startswith(prefix):
                return last
            return int(backbone.lr_layer_id(name[len(prefix) :]))

    elif num_layers is None:
        raise ValueError("num_layers is required with layer_id_fn")
    skip = no_weight_decay_names(model)
    buckets: dict[tuple[int, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer_id = layer_id_fn(name)
        if not 0 <= layer_id <= num_layers:
            raise ValueError(f"{name}: layer id {layer_id} outside [0, num_layers={num_layers}]")
        buckets.setdefault((layer_id, name in skip), []).append((name, param))
    if not buckets:
        raise ValueError("the model has no trainable parameters")
    groups = []
    for (layer_id, no_decay), members in sorted(buckets.items()):
        scale = decay_rate ** (num_layers - layer_id)
        group_name = f"layer_{layer_id}_{'no_decay' if no_decay else 'decay'}"
        decay = 0.0 if no_decay else weight_decay
        groups.append(_group(group_name, members, base_lr, scale, decay, betas, eps, layer_id))
    return groups


def _find_backbone(model: nn.Module) -> tuple[str, nn.Module]:
    """(name prefix, module) of the one module in `model` that gives layer depths (`lr_layer_id`)."""
    found = [
        (name, module)
        for name, module in model.named_modules()
        if callable(getattr(module, "lr_layer_id", None)) and hasattr(module, "num_lr_layers")
    ]
    if any(name == "" for name, _ in found):  # the model is the backbone
        return "", model
    outermost = [(n, m) for n, m in found if not any(n.startswith(o + ".") for o, _ in found)]
    if len(outermost) != 1:
        what = "no module" if not outermost else f"{len(outermost)} modules ({[n for n, _ in outermost]})"
        raise ValueError(
            f"layer-wise LR decay needs one backbone with lr_layer_id()/num_lr_layers in the model, found {what}; "
            "pass layer_id_fn and num_layers instead"
        )
    name, module = outermost[0]
    return (f"{name}." if name else ""), module


def _group(
    name: str,
    members: list,
    base_lr: float,
    lr_mult: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    layer_id: int | None,
) -> dict[str, Any]:
    group = {
        "name": name,
        "params": [p for _, p in members],
        "param_names": [n for n, _ in members],
        "lr_mult": lr_mult,
        "lr": base_lr * lr_mult,
        "weight_decay": weight_decay,
        "betas": tuple(betas),
        "eps": eps,
    }
    if layer_id is not None:
        group["layer_id"] = layer_id
    return group
