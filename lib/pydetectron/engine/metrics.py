"""Training statistics: windowed loss values, memory use, and the writers that record them.

Every `disp_interval` steps the trainer logs one line (step, losses, lr, time/iter, ETA,
memory) and hands the same scalars to each writer: `JSONLinesWriter` (one JSON object per
line in `metrics.jsonl`) and `TensorBoardWriter` (tensorboardX event files).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import statistics
from collections import deque
from pathlib import Path
from typing import Protocol

import torch

from pydetectron.utils.timer import format_seconds

logger = logging.getLogger(__name__)


class SmoothedValue:
    """The last `window` values of a series, with their median and mean (Detectron's)."""

    def __init__(self, window: int = 20):
        self.values: deque[float] = deque(maxlen=max(1, window))

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return float(statistics.median(self.values)) if self.values else float("nan")

    @property
    def mean(self) -> float:
        return float(sum(self.values) / len(self.values)) if self.values else float("nan")


def memory_mb(device: torch.device | str) -> float:
    """Peak CUDA memory allocated on `device`, or this process's resident memory on the CPU (MiB)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, KiB on Linux


class MetricsWriter(Protocol):
    def write(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class JSONLinesWriter:
    """Appends `{"step": ..., <scalar>: ...}` lines to a file (kept across resumed runs)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")  # closed in close()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self._handle.write(json.dumps({"step": int(step), **scalars}) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class TensorBoardWriter:
    """The same scalars as TensorBoard events (tensorboardX `SummaryWriter` in `log_dir`)."""

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError("--use_tfboard needs the tensorboardX package (pip install tensorboardX)") from error
        self._writer = SummaryWriter(str(log_dir))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class TrainingStats:
    """Collects per-step values and, every `disp_interval` steps, logs and writes them.

    Loss and metric values are smoothed with the median of the last `disp_interval` steps
    (Detectron.pytorch); time per iteration is the mean over that window.
    """

    def __init__(
        self,
        max_iter: int,
        disp_interval: int = 20,
        writers: list[MetricsWriter] | None = None,
        device: torch.device | str = "cpu",
    ):
        self.max_iter = max_iter
        self.disp_interval = max(1, disp_interval)
        self.writers = list(writers or [])
        self.device = torch.device(device)
        self.series: dict[str, SmoothedValue] = {}
        self.step_times = SmoothedValue(self.disp_interval)
        self.data_times = SmoothedValue(self.disp_interval)

    def state_dict(self) -> dict:
        """The smoothing windows, so that a resumed run logs the medians the uninterrupted one did."""
        return {
            "series": {key: list(series.values) for key, series in self.series.items()},
            "step_times": list(self.step_times.values),
            "data_times": list(self.data_times.values),
        }

    def load_state_dict(self, state: dict) -> None:
        self.series = {}
        for key, values in state.get("series", {}).items():
            self.series[key] = SmoothedValue(self.disp_interval)
            for value in values:
                self.series[key].add(value)
        for name in ("step_times", "data_times"):
            window = SmoothedValue(self.disp_interval)
            for value in state.get(name, []):
                window.add(value)
            setattr(self, name, window)

    def update(self, values: dict[str, float], step_time: float, data_time: float) -> None:
        for key, value in values.items():
            self.series.setdefault(key, SmoothedValue(self.disp_interval)).add(value)
        self.step_times.add(step_time)
        self.data_times.add(data_time)

    def should_log(self, step: int) -> bool:
        return step % self.disp_interval == 0 or step == self.max_iter - 1

    def scalars(self, step: int, lr: float) -> dict[str, float]:
        """What is logged at `step`: smoothed losses and metrics, lr, timings, ETA, memory.

        Loss and metric values are medians over the window; `time` is the mean time per step
        of the window and the ETA is that mean times the steps left.
        """
        values = {key: series.median for key, series in self.series.items()}
        time_per_iter = self.step_times.mean
        values.update(
            {
                "lr": lr,
                "time": time_per_iter,
                "data_time": self.data_times.mean,
                "eta_seconds": time_per_iter * max(0, self.max_iter - step - 1),
                "memory_mb": memory_mb(self.device),
            }
        )
        return values

    def log(self, step: int, lr: float, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Log the line for `step` and write its scalars (with `extra` ones); returns them."""
        scalars = self.scalars(step, lr)
        scalars.update(extra or {})
        loss_keys = [key for key in sorted(self.series) if key.startswith("loss")]
        losses = ", ".join(f"{key}: {scalars[key]:.6f}" for key in loss_keys)
        others = [f"{key}: {scalars[key]:.4f}" for key in sorted(self.series) if key not in loss_keys]
        others += [f"{key}: {value:g}" for key, value in (extra or {}).items()]
        others = ", ".join(others)
        memory_kind = "max_mem" if self.device.type == "cuda" else "rss"
        logger.info(
            "step %d/%d, lr %.6f, time %.3fs/it (data %.3fs), eta %s, %s %.0f MB | %s%s",
            step,
            self.max_iter,
            lr,
            scalars["time"],
            scalars["data_time"],
            format_seconds(scalars["eta_seconds"]),
            memory_kind,
            scalars["memory_mb"],
            losses,
            f" | {others}" if others else "",
        )
        for writer in self.writers:
            writer.write(step, scalars)
        return scalars

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
