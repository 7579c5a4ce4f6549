"""A wall-clock timer with running averages (per-iteration and data-loading times)."""

from __future__ import annotations

import time


class Timer:
    """`tic()` starts, `toc()` stops and records one interval; `average_time` is their mean.

    Kept deliberately simple (Detectron's Timer): the trainer times whole steps with it and
    derives the ETA from the average over the logging window (`reset()` starts a new one).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total_time = 0.0
        self.calls = 0
        self.start_time = 0.0
        self.diff = 0.0
        self.average_time = 0.0

    def tic(self) -> None:
        self.start_time = time.perf_counter()

    def toc(self, average: bool = True) -> float:
        """Stop; returns the average interval (or the last one with `average=False`)."""
        self.diff = time.perf_counter() - self.start_time
        self.total_time += self.diff
        self.calls += 1
        self.average_time = self.total_time / self.calls
        return self.average_time if average else self.diff


def format_seconds(seconds: float) -> str:
    """`3725.0` -> `'1:02:05'`; days are written out (`'2 days, 3:00:00'`)."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    if days:
        return f"{days} day{'s' if days > 1 else ''}, {clock}"
    return clock
