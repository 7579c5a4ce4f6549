"""A log line whenever the learning rate changes by more than a factor (Detectron's rule)."""

from __future__ import annotations

import logging
from typing import Any

from pydetectron.engine.hooks.base import Hook

logger = logging.getLogger(__name__)


class LRChangeLogger(Hook):
    """Logs 'Changing learning rate A -> B at step N' when the LR of a step differs from the
    previous step's by a ratio above `threshold` (SOLVER.LOG_LR_CHANGE_THRESHOLD), so decay
    steps are logged and the small moves of a linear warm-up are not."""

    def __init__(self, threshold: float = 1.1):
        self.threshold = float(threshold)
        self.last_lr: float | None = None

    def before_step(self, trainer, step: int) -> None:
        new_lr = trainer.schedule(step)
        old_lr = self.last_lr
        if old_lr is not None and new_lr != old_lr:
            ratio = max(new_lr / max(old_lr, 1e-10), old_lr / max(new_lr, 1e-10))
            if ratio > self.threshold:
                logger.info("Changing learning rate %.6f -> %.6f at step %d", old_lr, new_lr, step)
        self.last_lr = new_lr

    def state_dict(self) -> dict[str, Any]:
        return {} if self.last_lr is None else {"last_lr": self.last_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_lr = state.get("last_lr")
