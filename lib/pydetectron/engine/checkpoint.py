"""Checkpoint files: written atomically, read without executing code, found again for resuming.

A checkpoint is a dict of tensors, dicts, lists, strings and numbers (so it loads with
`torch.load(weights_only=True)`): 'model', 'optimizer', 'step' (0-based index of the last
finished step), 'lr', 'schedule', 'loader', 'rng' (and 'rng_per_rank' for multi-process
runs), 'scaler', 'cfg' (YAML text), 'iter_size', 'batch_size', 'world_size', 'args'.

Files go to `<output_dir>/ckpt/model_step<step>.pth`; `<output_dir>/ckpt/last_checkpoint`
names the newest complete one. Each file is written to a temporary file in the same folder,
flushed to disk, then renamed over the target, so a crash while saving never leaves a
truncated checkpoint behind and never touches the previous one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pydetectron.weights.errors import WeightsError
from pydetectron.weights.files import read_torch_file

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call `write(file_object)` on a temporary file next to `path`, fsync it, rename it to `path`.

    If `write` raises (or the process dies) `path` keeps its previous content, if any, and the
    temporary file is removed (on an exception).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> Path:
    """`torch.save` `checkpoint` to `path` atomically."""
    return atomic_write(path, lambda handle: torch.save(checkpoint, handle))


class CheckpointError(ValueError):
    """A weights or checkpoint file that cannot be used (corrupt, truncated, not ours)."""


def read_weights_file(path: str | os.PathLike) -> dict[str, Any]:
    """A `.pth` file as a dict, read on the CPU with `weights_only=True` (no code from the file runs).

    Raises FileNotFoundError or CheckpointError naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.endswith(".pkl"):
        raise CheckpointError(
            f"{path}: Detectron .pkl weights are not a PyTorch checkpoint; use --load_detectron "
            "(initialisation only, no --resume)"
        )
    try:
        data = read_torch_file(path)
    except WeightsError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a state dict or a checkpoint dict, got {type(data).__name__}")
    return data


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """One of our training checkpoints (a dict with 'model'); errors as `read_weights_file`."""
    data = read_weights_file(path)
    if "model" not in data:
        raise CheckpointError(f"{os.fspath(path)}: not a pydetectron checkpoint (expected a dict with a 'model' entry)")
    return data


class Checkpointer:
    """Saves `model_step<step>.pth` files in `directory` and tracks the newest one."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def path_for(self, step: int) -> Path:
        return self.directory / f"model_step{step}.pth"

    def save(self, checkpoint: dict[str, Any]) -> Path:
        """Write `checkpoint` (its 'step' names the file), then point `last_checkpoint` at it."""
        path = save_checkpoint(checkpoint, self.path_for(int(checkpoint["step"])))
        atomic_write(self.directory / LAST_CHECKPOINT, lambda handle: handle.write(path.name.encode()))
        logger.info("Saved checkpoint %s", path)
        return path

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        pointer = self.directory / LAST_CHECKPOINT
        if not pointer.is_file():
            return None
        path = self.directory / pointer.read_text(encoding="utf-8").strip()
        return path if path.is_file() else None
