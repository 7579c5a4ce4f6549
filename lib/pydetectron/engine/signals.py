"""Graceful stop on SIGINT / SIGTERM / SIGUSR1: finish the current step, save a checkpoint, exit.

The first stop signal only asks for a stop (`on_first(signal_name)`); a second one raises
`StopAborted` at once, so the run ends without saving anything more (a checkpoint being
written at that moment is abandoned and the previous one stays intact).

A launcher that relays the signal it got to its children (torchrun does) makes the training
processes receive the same signal twice when the whole process group was signalled. With
`repeat_window` > 0, a repeat of the first signal within that many seconds counts as the
same request.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from pydetectron.utils.signals import STOP_SIGNALS

logger = logging.getLogger(__name__)


class StopAborted(KeyboardInterrupt):
    """A second stop signal: leave now, without finishing the step or saving."""

    def __init__(self, signal_name: str):
        super().__init__(f"{signal_name} received again: stopping at once without saving")
        self.signal_name = signal_name


class StopSignals:
    """Turns the stop signals into a stop request (main thread only; elsewhere it does nothing).

    Use `install()` / `restore()` (or `with StopSignals(...)`): the previous handlers come back
    on restore. `requested` and `signal_name` tell whether and which signal asked for a stop.
    """

    def __init__(
        self,
        on_first: Callable[[str], None] | None = None,
        signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
        repeat_window: float = 0.0,
    ):
        self.on_first = on_first
        self.signals = tuple(signals)
        self.repeat_window = float(repeat_window)
        self.requested = False
        self.signal_name = ""
        self._first_at = 0.0
        self._previous: dict[int, object] = {}

    @property
    def enabled(self) -> bool:
        return threading.current_thread() is threading.main_thread()

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            relayed = name == self.signal_name and time.monotonic() - self._first_at < self.repeat_window
            if relayed:
                return
            raise StopAborted(name)
        self.requested, self.signal_name, self._first_at = True, name, time.monotonic()
        logger.warning(
            "%s received: stopping after the current step and saving a checkpoint (send it again to stop at once "
            "without saving)",
            name,
        )
        if self.on_first is not None:
            self.on_first(name)

    def install(self) -> None:
        if not self.enabled or self._previous:
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignals:
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
