"""The stop signals (SIGINT, SIGTERM, SIGUSR1) as seen by helper processes such as loader workers.

A job scheduler or `timeout` signals the whole process group. Only the main process decides
how a run stops (finish the step, save, exit), so helper processes must not die from these
signals: they ignore them. A worker is forked with the signals blocked
(`stop_signals_blocked`), so no signal can reach it before `ignore_stop_signals` has run in
it; a signal sent to the main process meanwhile waits until the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


def ignore_stop_signals() -> None:
    """In a helper process: ignore the stop signals, then unblock them (pending ones are dropped)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block the stop signals in this thread while the body runs (e.g. while workers are forked).

    Signals that arrive meanwhile are delivered when the block ends. Outside the main thread
    it does nothing (only the main thread forks the workers of a training loader).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
