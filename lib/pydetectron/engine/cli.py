"""What the command-line tools share: one-line user errors (exit code 2), flag spelling, --debug.

A user error (a typo in a config key, a file that is not there or not what it should be, a
bad flag value) ends a tool with one line on stderr, `<tool>: error: <what, where, how to
fix>`, and exit code 2; `--debug` shows the traceback instead. Anything else is a bug and
keeps its traceback.

Flags are spelled with underscores (`--data_dir`); the dashed spelling (`--data-dir`) is
accepted as an alias of every flag, and the other way round.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence

from pydetectron.config import ConfigFileError, ConfigKeyError, ConfigTypeError, ConfigValueError
from pydetectron.data.coco_json import DatasetFormatError
from pydetectron.data.transforms import ImageReadError
from pydetectron.engine.checkpoint import CheckpointError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 128 + 2  # as a shell reports a process ended by SIGINT


class UsageError(Exception):
    """A mistake in the command line or in what it points at (the message says how to fix it)."""


# Exceptions that are the user's input, not the code's fault.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ConfigKeyError,
    ConfigTypeError,
    ConfigValueError,
    ConfigFileError,
    DatasetFormatError,
    ImageReadError,
    CheckpointError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

# torch re-raises an exception of a loader worker with the worker's traceback in its message.
_WORKER_TRACEBACK = "Original Traceback"
_EXCEPTION_PREFIX = re.compile(r"^[\w.]+(Error|Exception): ")


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (a loader worker's traceback reduced to its last line)."""
    message = str(error)
    if isinstance(error, KeyError) and not isinstance(error, ConfigKeyError) and error.args:
        message = str(error.args[0])
    if _WORKER_TRACEBACK in message:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        message = _EXCEPTION_PREFIX.sub("", lines[-1]) if lines else message
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        message = f"{error.strerror}: {error.filename}"
    return " ".join(message.split()) or type(error).__name__


def run_tool(main: Callable[[list[str]], int], argv: Sequence[str] | None, prog: str) -> int:
    """Run a tool's `main(argv)`; a user error becomes one line on stderr and exit code 2, Ctrl-C
    (when the tool does not handle it itself) the line `<tool>: interrupted` and exit code 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(argv)
    except USER_ERRORS as error:
        if "--debug" in argv:
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if "--debug" in argv:
            raise
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _spellings(option: str) -> list[str]:
    """`--data_dir` -> ['--data_dir', '--data-dir'] (the underscore spelling first)."""
    if not option.startswith("--"):
        return [option]
    name = option[2:]
    underscored, dashed = "--" + name.replace("-", "_"), "--" + name.replace("_", "-")
    return [underscored] if underscored == dashed else [underscored, dashed]


class ToolArgumentParser(argparse.ArgumentParser):
    """ArgumentParser with one-line errors (exit code 2), `--debug`, and both flag spellings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="show the full traceback of errors")

    def add_argument(self, *names, **kwargs):
        spelled: list[str] = []
        for name in names:
            for spelling in _spellings(name):
                if spelling not in spelled:
                    spelled.append(spelling)
        return super().add_argument(*spelled, **kwargs)

    def add_mutually_exclusive_group(self, **kwargs):
        group = super().add_mutually_exclusive_group(**kwargs)
        plain = group.add_argument

        def add_argument(*names, **options):
            return plain(*[s for name in names for s in _spellings(name)], **options)

        group.add_argument = add_argument  # type: ignore[method-assign]
        return group

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")
