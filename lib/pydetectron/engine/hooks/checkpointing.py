"""Checkpoints every `period` steps, at the end of training and when a stop signal ends it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydetectron.engine.checkpoint import Checkpointer
from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.signals import StopAborted
from pydetectron.parallel.distributed import barrier

logger = logging.getLogger(__name__)


class CheckpointHook(Hook):
    """Saves `trainer.checkpoint_state()` plus `extras` (config text, arguments, ...).

    Every process must have this hook (the state is gathered from all of them); only the
    main process writes. At the end it saves unless the last finished step is saved already:
    after the last step, after a stop signal, and after a plain KeyboardInterrupt outside the
    optimizer update (single process). It saves nothing after a second stop signal, a
    non-finite loss or another error, so the last checkpoint stays the newest good one.
    """

    def __init__(self, checkpointer: Checkpointer, period: int = 0, extras: dict[str, Any] | None = None):
        self.checkpointer = checkpointer
        self.period = int(period)
        self.extras = dict(extras or {})
        self.saved_step: int | None = None
        self.last_path: Path | None = None

    def save(self, trainer) -> Path | None:
        """Write the checkpoint of the last finished step (collective: every process calls it)."""
        step = trainer.last_finished_step
        if step is None or step == self.saved_step:
            return self.last_path
        state = trainer.checkpoint_state()
        state.update(self.extras)
        path = self.checkpointer.save(state) if trainer.dist.is_main else None
        barrier()
        self.saved_step, self.last_path = state["step"], path
        return path

    def after_step(self, trainer, step: int, values: dict[str, float]) -> None:
        if self.period and (step + 1) % self.period == 0:
            self.save(trainer)

    def after_train(self, trainer, result) -> None:
        error = result.error
        if error is None:
            save = True
        elif isinstance(error, KeyboardInterrupt) and not isinstance(error, StopAborted):
            save = trainer.can_save_after_interrupt
            if save:
                logger.warning("interrupted: saving the state after step %d", trainer.last_finished_step)
            else:
                logger.error("interrupted during an update or with several processes: not saved (the last "
                             "checkpoint stays)")  # fmt: skip
        else:
            save = False
        if save:
            self.save(trainer)
        result.checkpoint = self.last_path or result.checkpoint
