"""Logging setup for the tools: one format, rank-aware verbosity, an optional log file."""

from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(levelname)s %(filename)s:%(lineno)4d: %(message)s"


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is when a record comes (a redirect or capture in force then)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(
    rank: int = 0,
    level: int = logging.INFO,
    log_file: str | os.PathLike | None = None,
) -> logging.Logger:
    """Configure the root logger once for a tool process and return the `pydetectron` logger.

    Rank 0 logs at `level`; other data-parallel ranks only log warnings and errors, so a
    multi-process run prints one copy of the progress. `log_file` (rank 0 only) receives the
    same lines as stdout. Calling it again replaces the handlers it installed before.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pydetectron", False):
            root.removeHandler(handler)
    effective = level if rank == 0 else logging.WARNING
    formatter = logging.Formatter(LOG_FORMAT if rank == 0 else f"[rank {rank}] {LOG_FORMAT}")
    handlers: list[logging.Handler] = [_CurrentStdoutHandler()]
    if log_file is not None and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._pydetectron = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(effective)
    return logging.getLogger("pydetectron")
