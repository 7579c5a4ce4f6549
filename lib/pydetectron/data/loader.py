"""The training loader: worker processes, pinned memory, padding collate, resumable position."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial

import cv2
import torch
from torch.utils.data import DataLoader

from pydetectron.data.minibatch import RoidbDataset, collate_minibatch
from pydetectron.data.samplers import GroupedBatchSampler
from pydetectron.utils.signals import ignore_stop_signals, stop_signals_blocked


AUTO_WORKERS = -1  # DATA_LOADER.NUM_THREADS / --nw value that means "pick from the cores"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_num_workers(cores: int | None = None) -> int:
    """Loader workers for `cores` (default: those available): none on 1-2 cores, where the
    model's intra-op threads already use every core and workers only take turns with them
    (2 workers were slower than 0 on 2 cores), else one per core beyond two, at most 4."""
    cores = available_cores() if cores is None else int(cores)
    return 0 if cores <= 2 else min(4, cores - 2)


def resolve_num_workers(requested: int) -> int:
    """`requested` workers, or `default_num_workers()` for AUTO_WORKERS (-1)."""
    requested = int(requested)
    if requested == AUTO_WORKERS:
        return default_num_workers()
    if requested < 0:
        raise ValueError(f"DATA_LOADER.NUM_THREADS (loader workers) must be >= 0 or -1 (auto), got {requested}")
    return requested


def worker_init(_worker_id: int) -> None:
    """One thread per worker (the workers already run in parallel); stop signals ignored.

    cv2.setNumThreads(0) (not 1): resizing OpenCV's thread pool in a forked worker whose
    parent had used the pool hangs, while 0 switches the pool off safely. SIGINT, SIGTERM
    and SIGUSR1 sent to the process group are for the main process, which finishes its step
    and saves: a worker that died from them would make the main process fail instead.
    """
    ignore_stop_signals()
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


class TrainLoader:
    """Endless iterable of training minibatches (see `collate_minibatch` for their keys).

    It counts the batches handed out, so `state_dict()` is the position after the last
    batch the trainer received, not after those the workers prefetched. Iterating again
    (or after `load_state_dict`) continues from that position. It also counts the images
    that could not be read and were replaced by others (`skipped_images`).
    """

    def __init__(
        self,
        dataset: RoidbDataset,
        sampler: GroupedBatchSampler,
        num_workers: int = 0,
        pin_memory: bool = False,
        size_divisibility: int = 0,
        prefetch_factor: int = 2,
        timeout: float = 0,
    ):
        self.dataset = dataset
        self.sampler = sampler
        self.num_workers = resolve_num_workers(num_workers)
        self.pin_memory = pin_memory
        self.size_divisibility = size_divisibility
        self.prefetch_factor = prefetch_factor
        self.timeout = timeout  # seconds to wait for a worker's batch (0: forever)
        self.position = sampler.start_batch
        self.skipped_images = 0  # unreadable images replaced so far (DATA_LOADER.SKIP_MISSING_IMAGES)

    @property
    def roidb(self):
        return self.dataset.roidb

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict]:
        self.sampler.start_batch = self.position
        extra = {}
        if self.num_workers > 0:
            extra = {
                "prefetch_factor": self.prefetch_factor,
                "worker_init_fn": worker_init,
                "timeout": self.timeout,
            }
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=self.num_workers,
            collate_fn=partial(collate_minibatch, size_divisibility=self.size_divisibility),
            pin_memory=self.pin_memory,
            **extra,
        )
        with stop_signals_blocked():  # the workers start with the signals blocked, see worker_init
            batches = iter(loader)
        for batch in batches:
            self.position += 1
            self.skipped_images += len(batch.get("skipped", ()))
            yield batch

    def state_dict(self) -> dict:
        """What to store in a checkpoint to resume the same sequence of batches."""
        state = self.sampler.state_dict()
        state["next_batch"] = self.position
        return {"sampler": state}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()` output (effective at the next `iter()`)."""
        self.sampler.load_state_dict(state["sampler"])
        self.position = self.sampler.start_batch
