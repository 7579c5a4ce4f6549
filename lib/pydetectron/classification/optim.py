"""Optimizer pieces of the classifier recipe: weight-decay groups and the LR schedule."""

from __future__ import annotations

import math

from torch import nn

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def parameter_groups(
    model: nn.Module, weight_decay: float, norm_weight_decay: float = 0.0, bias_weight_decay: float = 0.0
) -> list[dict]:
    """Three SGD groups: norm parameters, biases, everything else, each with its own decay.

    The recipe decays conv and linear weights only (norm and bias decay default to 0).
    """
    norm, bias, other = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, NORM_TYPES):
                norm.append(param)
            elif name == "bias":
                bias.append(param)
            else:
                other.append(param)
    groups = [
        {"params": norm, "weight_decay": norm_weight_decay},
        {"params": bias, "weight_decay": bias_weight_decay},
        {"params": other, "weight_decay": weight_decay},
    ]
    return [g for g in groups if g["params"]]


def warmup_cosine_factor(
    step: int, total_steps: int, warmup_steps: int, warmup_factor: float = 0.01, final_factor: float = 0.0
) -> float:
    """LR multiplier at `step`: linear warm-up from `warmup_factor` to 1, then cosine to `final_factor`.

    The warm-up is torch's LinearLR (factor warmup_factor at step 0, 1 at `warmup_steps`);
    the decay is CosineAnnealingLR over the remaining steps.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if step < warmup_steps:
        return warmup_factor + (1.0 - warmup_factor) * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
