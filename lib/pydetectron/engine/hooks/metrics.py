"""Logging of losses, metrics, time per step, ETA and memory every `disp_interval` steps."""

from __future__ import annotations

import logging
from typing import Any

from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.metrics import TrainingStats

logger = logging.getLogger(__name__)


class MetricsHook(Hook):
    """Feeds every step's values and timings to `TrainingStats`, which logs and writes them.

    Register it on the main process only. It also reports the images the loader could not
    read and replaced (DATA_LOADER.SKIP_MISSING_IMAGES) as 'skipped_images', and closes the
    writers at the end. Its state (the smoothing windows) makes a resumed run log the same
    medians as an uninterrupted one.
    """

    def __init__(self, stats: TrainingStats):
        self.stats = stats

    @staticmethod
    def _skipped(trainer) -> int:
        return int(getattr(trainer.loader, "skipped_images", 0))

    def after_step(self, trainer, step: int, values: dict[str, float]) -> None:
        self.stats.update(values, trainer.step_time, trainer.data_time)
        if self.stats.should_log(step):
            skipped = self._skipped(trainer)
            self.stats.log(step, trainer.lr, {"skipped_images": skipped} if skipped else None)

    def after_train(self, trainer, result) -> None:
        skipped = self._skipped(trainer)
        if skipped:
            logger.warning(
                "%d unreadable images were skipped and replaced by others (DATA_LOADER.SKIP_MISSING_IMAGES); "
                "their names are in the warnings above",
                skipped,
            )
        self.stats.close()

    def state_dict(self) -> dict[str, Any]:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)
