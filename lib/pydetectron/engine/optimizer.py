"""Optimizer with Detectron's parameter groups, and LR updates with Detectron's momentum rule.

Groups (Detectron.pytorch's split):
    weights: everything else, weight decay WEIGHT_DECAY, LR x 1.
    bias: every trainable `*.bias` (GroupNorm shifts included), LR x 2 with BIAS_DOUBLE_LR,
        weight decay only with BIAS_WEIGHT_DECAY.
    gn: GroupNorm scales, weight decay WEIGHT_DECAY_GN (0 by default), LR x 1.
Each group keeps its name and LR multiplier in the optimizer state (`name`, `lr_mult`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("SGD", "Adam")


@dataclass(frozen=True)
class SolverSettings:
    """The SOLVER.* keys the optimizer and the LR updates need."""

    optimizer: str = "SGD"
    momentum: float = 0.9
    weight_decay: float = 0.0005
    weight_decay_gn: float = 0.0
    bias_double_lr: bool = True
    bias_weight_decay: bool = False
    scale_momentum: bool = True
    scale_momentum_threshold: float = 1.1
    log_lr_change_threshold: float = 1.1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"SOLVER.TYPE (--o): unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")

    @classmethod
    def from_cfg(cls, cfg: Any) -> SolverSettings:
        s = cfg.SOLVER
        return cls(
            optimizer=str(s.TYPE),
            momentum=float(s.MOMENTUM),
            weight_decay=float(s.WEIGHT_DECAY),
            weight_decay_gn=float(s.WEIGHT_DECAY_GN),
            bias_double_lr=bool(s.BIAS_DOUBLE_LR),
            bias_weight_decay=bool(s.BIAS_WEIGHT_DECAY),
            scale_momentum=bool(s.SCALE_MOMENTUM),
            scale_momentum_threshold=float(s.SCALE_MOMENTUM_THRESHOLD),
            log_lr_change_threshold=float(s.LOG_LR_CHANGE_THRESHOLD),
        )


def group_parameter_names(model: nn.Module) -> dict[str, list[str]]:
    """Names of the trainable parameters in each group: 'weights', 'bias', 'gn'."""
    gn_weights = {
        f"{module_name}.weight" if module_name else "weight"
        for module_name, module in model.named_modules()
        if isinstance(module, nn.GroupNorm)
    }
    groups: dict[str, list[str]] = {"weights": [], "bias": [], "gn": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.rsplit(".", 1)[-1] == "bias":
            groups["bias"].append(name)
        elif name in gn_weights:
            groups["gn"].append(name)
        else:
            groups["weights"].append(name)
    return groups


def build_param_groups(model: nn.Module, settings: SolverSettings, base_lr: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups (empty groups left out) starting at `base_lr`."""
    params = dict(model.named_parameters())
    names = group_parameter_names(model)
    options = {
        "weights": (1.0, settings.weight_decay),
        "bias": (2.0 if settings.bias_double_lr else 1.0, settings.weight_decay if settings.bias_weight_decay else 0.0),
        "gn": (1.0, settings.weight_decay_gn),
    }
    groups = []
    for group_name, (lr_mult, weight_decay) in options.items():
        if names[group_name]:
            groups.append(
                {
                    "params": [params[n] for n in names[group_name]],
                    "name": group_name,
                    "lr_mult": lr_mult,
                    "lr": base_lr * lr_mult,
                    "weight_decay": weight_decay,
                }
            )
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return groups


def build_optimizer(model: nn.Module, settings: SolverSettings, base_lr: float) -> torch.optim.Optimizer:
    """SGD with momentum (Detectron) or Adam over `build_param_groups`."""
    groups = build_param_groups(model, settings, base_lr)
    if settings.optimizer == "SGD":
        return torch.optim.SGD(groups, lr=base_lr, momentum=settings.momentum)
    return torch.optim.Adam(groups, lr=base_lr)


def momentum_rescale_factor(old_lr: float, new_lr: float, scale_momentum: bool, threshold: float) -> float:
    """Factor for PyTorch SGD momentum buffers when the LR goes from `old_lr` to `new_lr`.

    Caffe2's momentum history holds LR-scaled updates (V = mu V + lr g) and Detectron
    rescales it by new/old on a change larger than SCALE_MOMENTUM_THRESHOLD. PyTorch's
    buffer holds plain gradients (B = mu B + g, step lr B), so it already equals a rescaled
    history: nothing to do then (factor 1). Where Detectron keeps the old scale (small
    changes such as warm-up, or SCALE_MOMENTUM False), the buffer is multiplied by old/new.
    """
    if old_lr == new_lr or new_lr <= 0.0:
        return 1.0
    ratio = max(new_lr / max(old_lr, 1e-10), old_lr / max(new_lr, 1e-10))
    if scale_momentum and old_lr > 1e-7 and ratio > threshold:
        return 1.0
    return old_lr / new_lr


class LRUpdater:
    """Sets the optimizer's LR for a step (each group: LR x its `lr_mult`) and keeps the
    SGD momentum history consistent with Detectron's rule (`momentum_rescale_factor`)."""

    def __init__(self, optimizer: torch.optim.Optimizer, settings: SolverSettings):
        self.optimizer = optimizer
        self.settings = settings

    @property
    def lr(self) -> float:
        """The current base LR (that of a group with multiplier 1, or the first group's / its multiplier)."""
        group = self.optimizer.param_groups[0]
        return float(group["lr"]) / float(group.get("lr_mult", 1.0))

    def set_lr(self, new_lr: float) -> None:
        old_lr = self.lr
        if new_lr == old_lr:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = new_lr * float(group.get("lr_mult", 1.0))
        if isinstance(self.optimizer, torch.optim.SGD):
            factor = momentum_rescale_factor(
                old_lr, new_lr, self.settings.scale_momentum, self.settings.scale_momentum_threshold
            )
            if factor != 1.0:
                self._scale_momentum(factor)

    def _scale_momentum(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            for param in group["params"]:
                buffer = self.optimizer.state.get(param, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(factor)

