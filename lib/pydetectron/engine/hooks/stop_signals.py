"""SIGINT / SIGTERM / SIGUSR1: finish the current step, save a checkpoint, stop."""

from __future__ import annotations

import signal

from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.signals import StopSignals
from pydetectron.utils.signals import STOP_SIGNALS


class StopOnSignal(Hook):
    """Installs the stop-signal handlers while training runs (main thread only).

    The first signal asks the trainer to stop after the current step (all processes stop
    after the same step; the checkpoint hook then saves); a second raises `StopAborted` at
    once. `repeat_window` seconds: see `StopSignals` (use a few seconds under a launcher such
    as torchrun that relays the group's signal a second time).
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS, repeat_window: float = 0.0):
        self.signals = tuple(signals)
        self.repeat_window = float(repeat_window)
        self.handlers: StopSignals | None = None

    def before_train(self, trainer) -> None:
        self.handlers = StopSignals(trainer.request_stop, self.signals, self.repeat_window)
        self.handlers.install()

    def after_train(self, trainer, result) -> None:
        if self.handlers is not None:
            self.handlers.restore()
            self.handlers = None
