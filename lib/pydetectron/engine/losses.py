"""Splitting a model's training outputs into losses and metrics, and the non-finite loss check."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; names the step and the offending loss terms."""

    def __init__(self, step: int, bad_terms: Mapping[str, float]):
        self.step = step
        self.bad_terms = dict(bad_terms)
        terms = ", ".join(f"{name}={value}" for name, value in self.bad_terms.items())
        super().__init__(
            f"non-finite loss at step {step}: {terms}. Training stopped before the update; the last "
            "checkpoint is intact. Try a lower --lr, a longer warm-up, SOLVER.CLIP_GRAD_NORM, or no --amp."
        )


def split_outputs(outputs: Mapping[str, object]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(losses, metrics): entries whose key starts with 'loss' are losses, scalar others are metrics."""
    if not isinstance(outputs, Mapping):
        raise TypeError(f"in training mode the model must return a dict of losses, got {type(outputs).__name__}")
    losses, metrics = {}, {}
    for key, value in outputs.items():
        if not torch.is_tensor(value) or value.numel() != 1:
            continue
        (losses if key.startswith("loss") else metrics)[key] = value.reshape(())
    if not losses:
        raise ValueError(f"the model returned no loss (no key starting with 'loss'): {sorted(outputs)}")
    return losses, metrics


def non_finite_terms(values: Mapping[str, float]) -> dict[str, float]:
    """The entries of `values` that are NaN or infinite."""
    return {key: value for key, value in values.items() if not math.isfinite(value)}
