"""Graceful stop on SIGINT / SIGTERM: finish the current step, save a checkpoint, exit.

A second Ctrl-C raises KeyboardInterrupt at once (nothing saved mid-step).
"""

from __future__ import annotations

import logging
import signal
import threading

logger = logging.getLogger(__name__)


class StopSignals:
    """Context manager that turns SIGINT and SIGTERM into a `requested` flag (main thread only)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signal_name = True, name
        logger.warning("%s received: stopping after the current step and saving a checkpoint "
                       "(press Ctrl-C again to abort without saving)", name)

    def __enter__(self) -> StopSignals:
        if self.enabled:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
