"""Adaptive config (Detectron.pytorch): fit the schedule of a config to the batch actually used.

Terms: the config's batch is NUM_GPUS x TRAIN.IMS_PER_BATCH (as written in the file); the
run's batch is `--bs` images per forward/backward summed over all devices; the effective
batch is batch x `--iter_size` (images per optimizer update).

- SOLVER.STEPS and SOLVER.MAX_ITER are scaled inversely with the effective batch
  (rounded as `int(x * scale + 0.5)`), so the run sees the same number of images.
- SOLVER.BASE_LR is scaled linearly. Detectron.pytorch sums the gradients of the
  `iter_size` passes and scales the LR with the batch; this trainer averages them (losses
  divided by `iter_size`, so `--bs 2 --iter_size 2` has the gradients of `--bs 4`) and
  therefore scales the LR with the effective batch: the same update either way, and weight
  decay as strong as in the config's own schedule. Without `--iter_size` both are the batch.
- TRAIN.IMS_PER_BATCH becomes batch / devices and NUM_GPUS the number of devices.
- The checkpoint period is TRAIN.SNAPSHOT_ITERS / devices (Detectron.pytorch).
- TRAIN.EVAL_PERIOD scales like MAX_ITER (at least 1 step when on), so the evaluations
  happen at the same points of the schedule.
SOLVER.WARM_UP_ITERS and STEP_SIZE are left as they are (as in Detectron.pytorch).
FPN.RPN_COLLECT_SCALE stays 1: TRAIN.RPN_POST_NMS_TOP_N counts proposals per image here, so
the per-batch correction Detectron.pytorch makes with it is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def scale_iterations(value: int, scale: float) -> int:
    """An iteration count times `scale`, rounded half up (Detectron.pytorch's rounding)."""
    return int(value * scale + 0.5)


@dataclass(frozen=True)
class BatchAdjustment:
    """What `adapt_cfg_to_batch` changed; `describe()` gives the lines the tool prints."""

    original_batch_size: int
    batch_size: int
    iter_size: int
    num_gpus: int
    original_num_gpus: int
    ims_per_batch: int
    original_ims_per_batch: int
    base_lr: tuple[float, float]
    steps: tuple[list[int], list[int]]
    max_iter: tuple[int, int]
    snapshot_period: int
    eval_period: tuple[int, int] = (0, 0)

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.iter_size

    def describe(self) -> list[str]:
        lines = [
            f"Batch size: {self.original_batch_size} (config: NUM_GPUS {self.original_num_gpus} x IMS_PER_BATCH "
            f"{self.original_ims_per_batch}) --> {self.batch_size} (NUM_GPUS {self.num_gpus} x IMS_PER_BATCH "
            f"{self.ims_per_batch}), iter_size {self.iter_size}, effective batch size "
            f"{self.original_batch_size} --> {self.effective_batch_size}",
            f"Adjust BASE_LR linearly with the effective batch size: {self.base_lr[0]} --> {self.base_lr[1]}",
            "Adjust SOLVER.STEPS and SOLVER.MAX_ITER inversely with the effective batch size:",
            f"    SOLVER.STEPS: {self.steps[0]} --> {self.steps[1]}",
            f"    SOLVER.MAX_ITER: {self.max_iter[0]} --> {self.max_iter[1]}",
            f"Checkpoint period (TRAIN.SNAPSHOT_ITERS / NUM_GPUS): {self.snapshot_period} steps",
        ]
        if self.eval_period[0]:
            lines.insert(4, f"    TRAIN.EVAL_PERIOD: {self.eval_period[0]} --> {self.eval_period[1]}")
        return lines


def adapt_cfg_to_batch(cfg: Any, batch_size: int | None, iter_size: int = 1, num_gpus: int = 1) -> BatchAdjustment:
    """Rewrite the schedule of the (mutable) `cfg` for `batch_size` images on `num_gpus` devices.

    `batch_size` None keeps the config's batch (NUM_GPUS x IMS_PER_BATCH); it must be a
    multiple of `num_gpus`. Returns what changed.
    """
    if iter_size < 1:
        raise ValueError(f"--iter_size must be >= 1, got {iter_size}")
    if num_gpus < 1:
        raise ValueError(f"the number of devices must be >= 1, got {num_gpus}")
    original_num_gpus = int(cfg.NUM_GPUS)
    original_ims = int(cfg.TRAIN.IMS_PER_BATCH)
    original_batch = original_num_gpus * original_ims
    if original_batch < 1:
        raise ValueError(f"NUM_GPUS x TRAIN.IMS_PER_BATCH must be >= 1, got {original_num_gpus} x {original_ims}")
    batch = original_batch if batch_size is None else int(batch_size)
    if batch < 1:
        raise ValueError(f"--bs must be >= 1, got {batch}")
    if batch % num_gpus != 0:
        raise ValueError(f"--bs {batch} must be a multiple of the number of devices ({num_gpus})")
    effective = batch * iter_size

    old_lr = float(cfg.SOLVER.BASE_LR)
    new_lr = old_lr * effective / original_batch
    step_scale = original_batch / effective
    old_steps = [int(s) for s in cfg.SOLVER.STEPS]
    new_steps = [scale_iterations(s, step_scale) for s in old_steps]
    old_max_iter = int(cfg.SOLVER.MAX_ITER)
    new_max_iter = scale_iterations(old_max_iter, step_scale)

    old_eval_period = int(cfg.TRAIN.EVAL_PERIOD)
    new_eval_period = max(1, scale_iterations(old_eval_period, step_scale)) if old_eval_period > 0 else 0

    cfg.NUM_GPUS = num_gpus
    cfg.TRAIN.EVAL_PERIOD = new_eval_period
    cfg.TRAIN.IMS_PER_BATCH = batch // num_gpus
    cfg.SOLVER.BASE_LR = new_lr
    cfg.SOLVER.STEPS = new_steps
    cfg.SOLVER.MAX_ITER = new_max_iter
    return BatchAdjustment(
        original_batch_size=original_batch,
        batch_size=batch,
        iter_size=iter_size,
        num_gpus=num_gpus,
        original_num_gpus=original_num_gpus,
        ims_per_batch=int(cfg.TRAIN.IMS_PER_BATCH),
        original_ims_per_batch=original_ims,
        base_lr=(old_lr, new_lr),
        steps=(old_steps, new_steps),
        max_iter=(old_max_iter, new_max_iter),
        snapshot_period=snapshot_period(int(cfg.TRAIN.SNAPSHOT_ITERS), num_gpus),
        eval_period=(old_eval_period, new_eval_period),
    )


def snapshot_period(snapshot_iters: int, num_gpus: int) -> int:
    """Steps between checkpoints: SNAPSHOT_ITERS / devices (at least 1; <= 0 means never)."""
    if snapshot_iters <= 0:
        return 0
    return max(1, int(snapshot_iters / num_gpus))
