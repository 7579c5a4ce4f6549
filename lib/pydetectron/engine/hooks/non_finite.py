"""Stop before the update when a loss is NaN or infinite."""

from __future__ import annotations

from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.losses import NonFiniteLossError, non_finite_terms


class StopOnNonFiniteLoss(Hook):
    """Raises `NonFiniteLossError` (naming the step and the bad terms) before the optimizer
    applies a step whose total loss or any 'loss*' term is NaN or infinite. The values are
    averaged over the processes first, so every process stops at the same step, and the
    weights stay those of the previous step (the last checkpoint stays the newest)."""

    def before_update(self, trainer, step: int, values: dict[str, float]) -> None:
        bad = non_finite_terms({key: value for key, value in values.items() if key.startswith("loss")})
        if bad:
            raise NonFiniteLossError(step, bad)
