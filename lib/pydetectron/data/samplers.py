"""Batch samplers: infinite, aspect-grouped, distributed, seeded and resumable.

`GroupedBatchSampler` yields this rank's share of one global batch at a time. Epoch
`e` is a permutation drawn from `default_rng([seed, e])`; with aspect grouping the
landscape (w >= h) and portrait images are chunked separately, so every global batch
holds one orientation only, and batches are ordered by where their last image falls
in the permutation. Each epoch leaves out at most `global_batch - 1` images per group
(different ones each epoch). The sequence is a pure function of (seed, position):
`state_dict()` records the position and `load_state_dict()` resumes it exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from pydetectron.data.minibatch import SampleKey


class GroupedBatchSampler(Sampler):
    """Infinite sampler of `images_per_batch` `SampleKey`s per step for one rank.

    Args:
        aspect_ratios: width / height of each roidb entry.
        images_per_batch: images per step on this rank (TRAIN.IMS_PER_BATCH).
        num_scales: how many TRAIN.SCALES to pick from (uniformly, per image).
        group_by_aspect: TRAIN.ASPECT_GROUPING.
        seed: RNG_SEED; all ranks must use the same one.
        rank, world_size: this process's place among the data-parallel processes; each
            rank takes a disjoint slice of every global batch.
        shuffle: False visits the entries in order (still grouped when asked).
    """

    def __init__(
        self,
        aspect_ratios: np.ndarray,
        images_per_batch: int,
        num_scales: int = 1,
        group_by_aspect: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if images_per_batch < 1:
            raise ValueError(f"images_per_batch must be >= 1, got {images_per_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world {world_size}")
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        self.aspect_ratios = np.asarray(aspect_ratios, dtype=np.float64)
        self.images_per_batch = images_per_batch
        self.num_scales = num_scales
        self.group_by_aspect = group_by_aspect
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.shuffle = shuffle
        self.global_batch = images_per_batch * world_size
        self.groups = (self.aspect_ratios >= 1.0).astype(np.int64) if group_by_aspect else None
        self.batches_per_epoch = self._count_batches()
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{len(self.aspect_ratios)} images cannot fill one global batch of "
                f"{self.global_batch} ({images_per_batch} per rank x {world_size} ranks)"
                + (" within one aspect group" if group_by_aspect else "")
            )
        self.start_batch = 0  # global position of the next batch an iterator yields
        self._yielded = 0

    def _count_batches(self) -> int:
        if self.groups is None:
            return len(self.aspect_ratios) // self.global_batch
        counts = np.bincount(self.groups, minlength=2)
        return int((counts // self.global_batch).sum())

    def epoch_batches(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global batches of `epoch`: (indices, scale indices, seeds), each [B, global_batch]."""
        rng = np.random.default_rng([self.seed, epoch])
        num = len(self.aspect_ratios)
        order = rng.permutation(num) if self.shuffle else np.arange(num)
        size = self.global_batch
        if self.groups is None:
            batches = order[: self.batches_per_epoch * size].reshape(-1, size)
        else:
            chunks, last_pos = [], []
            group_of = self.groups[order]
            for group in (0, 1):
                positions = np.nonzero(group_of == group)[0]
                count = len(positions) // size
                chunks.append(order[positions[: count * size]].reshape(count, size))
                last_pos.append(positions[size - 1 : count * size : size])
            batches = np.concatenate(chunks)[np.argsort(np.concatenate(last_pos), kind="stable")]
        scales = rng.integers(self.num_scales, size=batches.shape)
        seeds = rng.integers(2**31 - 1, size=batches.shape)
        return batches, scales, seeds

    def __iter__(self) -> Iterator[list[SampleKey]]:
        position = self.start_batch
        self._yielded = position
        lo, hi = self.rank * self.images_per_batch, (self.rank + 1) * self.images_per_batch
        epoch, offset = divmod(position, self.batches_per_epoch)
        while True:
            batches, scales, seeds = self.epoch_batches(epoch)
            for b in range(offset, self.batches_per_epoch):
                keys = [
                    SampleKey(int(i), int(s), int(r))
                    for i, s, r in zip(batches[b, lo:hi], scales[b, lo:hi], seeds[b, lo:hi])
                ]
                self._yielded += 1
                yield keys
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:
        """Batches per epoch (the iterator itself never ends)."""
        return self.batches_per_epoch

    def state_dict(self, batches_consumed: int | None = None) -> dict:
        """Position to resume from: after the last batch yielded, or `start + consumed`."""
        position = (
            self._yielded if batches_consumed is None else self.start_batch + batches_consumed
        )
        return {
            "seed": self.seed,
            "next_batch": int(position),
            "global_batch": self.global_batch,
            "batches_per_epoch": self.batches_per_epoch,
            "num_images": len(self.aspect_ratios),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position (takes effect at the next `iter()`)."""
        if int(state["num_images"]) != len(self.aspect_ratios):
            raise ValueError(
                f"sampler state is for {state['num_images']} images, this roidb has "
                f"{len(self.aspect_ratios)}"
            )
        self.seed = int(state["seed"])
        old_per_epoch = int(state["batches_per_epoch"])
        if old_per_epoch == self.batches_per_epoch:
            self.start_batch = int(state["next_batch"])
        else:  # another batch or world size: same epoch, same fraction of it
            epoch, offset = divmod(int(state["next_batch"]), old_per_epoch)
            offset = offset * self.batches_per_epoch // old_per_epoch
            self.start_batch = epoch * self.batches_per_epoch + offset
        self._yielded = self.start_batch


class InferenceSampler(Sampler):
    """Each rank takes one contiguous shard of 0..size-1, in order (for testing)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world {world_size}")
        shard = (size + world_size - 1) // world_size
        self.indices = range(rank * shard, min(size, (rank + 1) * shard))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
