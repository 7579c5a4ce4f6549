"""Per-range detection files, so a test run can be split, resumed and merged.

A range file `detections_range_<start>_<end>.pth` holds the detections of roidb
entries [start, end) and a fingerprint of what produced them (config, weights,
dataset). A later run reuses every file whose fingerprint matches and only computes
the ranges still missing; files are written through a temporary name, so an
interrupted run never leaves a half-written one. Files load with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

RANGE_FILE = re.compile(r"^detections_range_(\d+)_(\d+)\.pth$")
FORMAT_VERSION = 1


@dataclass
class ImageResult:
    """Detections of one roidb entry (`error` set, and nothing detected, when it could not be read)."""

    index: int
    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: list[dict] | None = None  # COCO RLEs with str counts
    keypoints: np.ndarray | None = None  # [N, K, 3]
    error: str = ""

    @classmethod
    def failed(cls, index: int, image_id: int, error: str) -> ImageResult:
        return cls(index, image_id, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   error=error)  # fmt: skip


@dataclass
class RangeResult:
    """The results of entries [start, end) of a dataset, in entry order."""

    start: int
    end: int
    fingerprint: str
    images: list[ImageResult] = field(default_factory=list)

    def to_state(self) -> dict:
        counts = [len(r.scores) for r in self.images]
        keypoints = [r.keypoints for r in self.images if r.keypoints is not None]
        return {
            "version": FORMAT_VERSION,
            "start": self.start,
            "end": self.end,
            "fingerprint": self.fingerprint,
            "indices": torch.tensor([r.index for r in self.images], dtype=torch.int64),
            "image_ids": torch.tensor([r.image_id for r in self.images], dtype=torch.int64),
            "counts": torch.tensor(counts, dtype=torch.int64),
            "boxes": torch.from_numpy(_cat([r.boxes.reshape(-1, 4) for r in self.images], (0, 4), np.float32)),
            "scores": torch.from_numpy(_cat([r.scores for r in self.images], (0,), np.float32)),
            "classes": torch.from_numpy(_cat([r.classes for r in self.images], (0,), np.int64)),
            "errors": [r.error for r in self.images],
            "masks": [r.masks for r in self.images] if any(r.masks is not None for r in self.images) else None,
            "keypoints": (
                torch.from_numpy(np.concatenate(keypoints).astype(np.float32))
                if len(keypoints) == len(self.images) and keypoints
                else None
            ),
        }

    @classmethod
    def from_state(cls, state: dict) -> RangeResult:
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown detections file version {state.get('version')!r}")
        counts = state["counts"].tolist()
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        boxes, scores = state["boxes"].numpy(), state["scores"].numpy()
        classes = state["classes"].numpy()
        keypoints = state["keypoints"].numpy() if state.get("keypoints") is not None else None
        masks = state.get("masks")
        images = []
        for i, (index, image_id) in enumerate(zip(state["indices"].tolist(), state["image_ids"].tolist())):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            images.append(
                ImageResult(
                    index=index,
                    image_id=image_id,
                    boxes=boxes[lo:hi],
                    scores=scores[lo:hi],
                    classes=classes[lo:hi],
                    masks=masks[i] if masks is not None else None,
                    keypoints=keypoints[lo:hi] if keypoints is not None else None,
                    error=state["errors"][i],
                )
            )
        return cls(int(state["start"]), int(state["end"]), str(state["fingerprint"]), images)


def _cat(arrays: Sequence[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(empty_shape, dtype)


def fingerprint(*parts: str) -> str:
    """A short hash identifying what produced some detections (config text, weights, dataset)."""
    digest = hashlib.sha1()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def weights_identity(path: str | os.PathLike | None) -> str:
    """Path, size and modification time of a weights file ('' when there is none)."""
    if not path:
        return ""
    stat = os.stat(path)
    return f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"


def range_path(output_dir: str | os.PathLike, start: int, end: int) -> Path:
    return Path(output_dir) / f"detections_range_{start}_{end}.pth"


def save_range(output_dir: str | os.PathLike, result: RangeResult) -> Path:
    """Write a range file (through a temporary name) and return its path."""
    path = range_path(output_dir, result.start, result.end)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(result.to_state(), tmp)
    os.replace(tmp, path)
    return path


def load_range(path: str | os.PathLike) -> RangeResult:
    """Read a range file; raises ValueError naming it when it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return RangeResult.from_state(state)
    except Exception as error:
        raise ValueError(f"{path}: not a readable detections range file ({error})") from error


def find_ranges(output_dir: str | os.PathLike, expected_fingerprint: str) -> dict[tuple[int, int], Path]:
    """Range files in `output_dir` produced with `expected_fingerprint` ({(start, end): path}).

    Unreadable files and files of another configuration are skipped with a warning.
    """
    found: dict[tuple[int, int], Path] = {}
    folder = Path(output_dir)
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        match = RANGE_FILE.match(path.name)
        if not match:
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            logger.warning("Ignoring %s: unreadable (%s); its range will be computed again", path, error)
            continue
        if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
            logger.warning("Ignoring %s: produced with another config, weights or dataset", path)
            continue
        found[(int(match.group(1)), int(match.group(2)))] = path
    return found


def plan_ranges(
    start: int, end: int, existing: dict[tuple[int, int], Path], chunk_size: int
) -> list[tuple[int, int, Path | None]]:
    """Cover [start, end) with existing files where they fit, new chunks elsewhere.

    New chunks end on multiples of `chunk_size` (or where an existing file starts), so
    the same command run again finds the same files. Returns (start, end, path or None).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    usable = {key: path for key, path in existing.items() if start <= key[0] < key[1] <= end}
    plan: list[tuple[int, int, Path | None]] = []
    position = start
    while position < end:
        here = [(e, path) for (s, e), path in usable.items() if s == position]
        if here:
            stop, path = max(here, key=lambda item: item[0])
            plan.append((position, stop, path))
            position = stop
            continue
        next_grid = (position // chunk_size + 1) * chunk_size
        later = [s for (s, _) in usable if s > position]
        stop = min([next_grid, end] + later)
        plan.append((position, stop, None))
        position = stop
    return plan
