"""The training loop: iter_size accumulation, LR schedule, AMP, clipping, checkpoints, logging.

One step (0-based index `step`) runs `iter_size` forward/backward passes on consecutive
minibatches, each loss divided by `iter_size` (the gradients of one batch `iter_size` times
as large), then sets the LR of `step`, optionally clips the gradient norm, and updates.
Loss values are averaged over the data-parallel processes before the non-finite check, so
every process stops together, before the update, when any loss term is NaN or infinite.

After every finished step the trainer remembers the loader position and the RNG states;
a checkpoint is that state plus the model, optimizer and loss scaler, so resuming from it
repeats the uninterrupted run exactly (same batches, same random draws, same updates).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pydetectron.engine.amp import MixedPrecision
from pydetectron.engine.checkpoint import Checkpointer
from pydetectron.engine.losses import NonFiniteLossError, non_finite_terms, split_outputs
from pydetectron.engine.lr_schedule import LRSchedule
from pydetectron.engine.metrics import TrainingStats
from pydetectron.engine.optimizer import LRUpdater, SolverSettings
from pydetectron.engine.rng import capture_rng_state, restore_rng_state
from pydetectron.engine.signals import StopSignals
from pydetectron.parallel.distributed import (
    DistributedInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    unwrap_model,
)

logger = logging.getLogger(__name__)

ForwardFn = Callable[[nn.Module, dict], dict]


def move_to(value: Any, device: torch.device) -> Any:
    """Tensors (also inside lists and dicts) moved to `device`; anything else unchanged."""
    if torch.is_tensor(value) or hasattr(value, "to"):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: move_to(item, device) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(move_to(item, device) for item in value)
    return value


def detection_forward(model: nn.Module, batch: dict) -> dict:
    """Call a detection model on a training minibatch of the data loader."""
    return model(batch["data"], batch["im_info"], batch["targets"])


@dataclass(frozen=True)
class TrainerOptions:
    """How long and how to train (the tool fills these from the config and flags)."""

    max_iter: int
    iter_size: int = 1
    clip_grad_norm: float = 0.0
    snapshot_period: int = 0  # steps between checkpoints; 0: only at the end / on stop
    handle_signals: bool = True  # SIGINT / SIGTERM: finish the step, save, stop

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise ValueError(f"SOLVER.MAX_ITER must be >= 1, got {self.max_iter}")
        if self.iter_size < 1:
            raise ValueError(f"iter_size must be >= 1, got {self.iter_size}")
        if self.clip_grad_norm < 0:
            raise ValueError(f"SOLVER.CLIP_GRAD_NORM must be >= 0, got {self.clip_grad_norm}")


@dataclass
class TrainResult:
    """How training ended: the last finished step, the newest checkpoint, and why it stopped."""

    last_step: int
    checkpoint: Path | None = None
    stopped_by: str = ""  # '' (finished), or the signal name
    history: list[dict[str, float]] = field(default_factory=list)


class _StoppedWhileFetching(Exception):
    """The data loader failed after a stop signal (its workers got the Ctrl-C too)."""


@dataclass
class _Boundary:
    """What the trainer must remember about the state after a finished step."""

    step: int
    loader: dict | None
    rng: dict


class Trainer:
    """Runs training steps on `model` with minibatches from `loader` (an endless iterable).

    Args:
        model: returns a dict of losses ('loss*') and scalar metrics in training mode; may
            be wrapped in DistributedDataParallel or the variable-size DataParallel.
        optimizer: built with `build_optimizer` (its groups carry `lr_mult`).
        schedule: LR as a function of the step.
        loader: endless iterable of minibatches; `state_dict` / `load_state_dict` (if it has
            them) are saved in checkpoints for exact resuming.
        device: where inputs go (None: leave them where they are, e.g. for DataParallel).
        checkpointer: where checkpoints go (None: never save, `--no_save`).
        stats: logs and writes the metrics (None on processes other than rank 0).
        checkpoint_extras: added to every checkpoint (config YAML text, arguments, ...).
        keep_history: keep every step's values in `TrainResult.history` (for tests).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: LRSchedule,
        loader: Iterable[dict],
        options: TrainerOptions,
        solver: SolverSettings | None = None,
        device: torch.device | str | None = "cpu",
        amp: MixedPrecision | None = None,
        checkpointer: Checkpointer | None = None,
        stats: TrainingStats | None = None,
        dist_info: DistributedInfo | None = None,
        checkpoint_extras: dict[str, Any] | None = None,
        forward_fn: ForwardFn = detection_forward,
        keep_history: bool = False,
    ):
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.loader = loader
        self.options = options
        self.lr_updater = LRUpdater(optimizer, solver or SolverSettings())
        self.device = torch.device(device) if device is not None else None
        self.amp = amp or MixedPrecision("", self.device or "cpu")
        self.checkpointer = checkpointer
        self.stats = stats
        self.dist = dist_info or DistributedInfo()
        self.checkpoint_extras = dict(checkpoint_extras or {})
        self.forward_fn = forward_fn
        self.keep_history = keep_history
        self._rng_to_restore: dict | None = None
        self._boundary: _Boundary | None = None
        self._pending_batch: dict | None = None
        self._updating = False
        self._stop_everywhere = False
        self._signals: StopSignals | None = None

    # ------------------------------------------------------------------ checkpoints
    def resume(self, checkpoint: dict[str, Any]) -> int:
        """Load model, optimizer, scaler, loader position and RNG states; returns the next step."""
        unwrap_model(self.model).load_state_dict(checkpoint["model"])
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except ValueError as error:
            raise ValueError(
                f"the checkpoint's optimizer state does not fit this model's parameter groups ({error}); "
                "resume with the same config, or load the weights only (--load_ckpt without --resume)"
            ) from error
        self.amp.load_state_dict(checkpoint.get("scaler") or {})
        loader_state = checkpoint.get("loader")
        if loader_state and hasattr(self.loader, "load_state_dict"):
            self.loader.load_state_dict(loader_state)
        elif hasattr(self.loader, "load_state_dict"):
            logger.warning("the checkpoint has no loader state: the data order restarts")
        self._rng_to_restore = self._rng_for_this_rank(checkpoint)
        saved_iter_size = checkpoint.get("iter_size")
        if saved_iter_size is not None and int(saved_iter_size) != self.options.iter_size:
            logger.warning(
                "resuming with iter_size %d, the checkpoint was made with %d", self.options.iter_size, saved_iter_size
            )
        return int(checkpoint["step"]) + 1

    def _rng_for_this_rank(self, checkpoint: dict[str, Any]) -> dict | None:
        per_rank = checkpoint.get("rng_per_rank")
        if per_rank and len(per_rank) == self.dist.world_size:
            return per_rank[self.dist.rank]
        saved_world = int(checkpoint.get("world_size", 1))
        if saved_world != self.dist.world_size:
            logger.warning(
                "resuming with %d processes, the checkpoint was made with %d: random draws will differ from "
                "an uninterrupted run",
                self.dist.world_size,
                saved_world,
            )
        return checkpoint.get("rng") if self.dist.world_size == 1 else None

    def checkpoint_state(self) -> dict[str, Any]:
        """The checkpoint of the last finished step (collective: call on every process)."""
        boundary = self._boundary
        if boundary is None:
            raise RuntimeError("no step has finished yet: nothing to checkpoint")
        rng_states = all_gather_objects(boundary.rng)
        state = {
            "step": boundary.step,
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.amp.state_dict(),
            "lr": self.schedule(boundary.step),
            "schedule": self.schedule.as_dict(),
            "loader": boundary.loader or {},
            "rng": rng_states[0],
            "iter_size": self.options.iter_size,
            "world_size": self.dist.world_size,
        }
        if self.dist.world_size > 1:
            state["rng_per_rank"] = rng_states
        state.update(self.checkpoint_extras)
        return state

    def save(self) -> Path | None:
        """Write the checkpoint of the last finished step (rank 0 writes; every rank must call)."""
        if self.checkpointer is None or self._boundary is None:
            return None
        state = self.checkpoint_state()
        path = self.checkpointer.save(state) if self.dist.is_main else None
        barrier()
        return path

    # ------------------------------------------------------------------ the loop
    def train(self, start_step: int = 0) -> TrainResult:
        """Run steps `start_step` .. max_iter - 1; save every `snapshot_period`, at the end, on stop."""
        options = self.options
        result = TrainResult(last_step=start_step - 1)
        if start_step >= options.max_iter:
            logger.info("start step %d >= MAX_ITER %d: nothing to train", start_step, options.max_iter)
            if self.stats is not None:
                self.stats.close()
            return result
        self.model.train()
        data_iter = iter(self.loader)
        # The first batch is fetched before restoring the RNG states: creating the data
        # iterator draws random numbers, which the uninterrupted run did before its first step.
        self._pending_batch = next(data_iter)
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        self._boundary = None
        saved_at = None

        def save_now() -> None:
            nonlocal saved_at
            if saved_at != result.last_step:
                result.checkpoint = self.save() or result.checkpoint
                saved_at = result.last_step

        with StopSignals(options.handle_signals) as signals:
            self._signals = signals
            try:
                for step in range(start_step, options.max_iter):
                    if signals.requested and self.dist.world_size == 1:
                        result.stopped_by = signals.signal_name
                        break
                    values = self._timed_step(step, data_iter)
                    result.last_step = step
                    if self.keep_history:
                        result.history.append(values)
                    if options.snapshot_period and (step + 1) % options.snapshot_period == 0:
                        save_now()
                    if self._stop_everywhere:
                        result.stopped_by = signals.signal_name or "a signal on another process"
                        break
                save_now()
            except _StoppedWhileFetching:
                result.stopped_by = signals.signal_name
                logger.warning("the data loader stopped after %s: saving the state after step %d",
                               signals.signal_name, result.last_step)
                save_now()
            except KeyboardInterrupt:
                if self._updating or self.dist.world_size > 1:
                    logger.error("interrupted in step %d: not saved (the last checkpoint stays)", result.last_step + 1)
                else:
                    logger.warning("interrupted: saving the state after step %d", result.last_step)
                    save_now()
                raise
            finally:
                self._signals = None
                if self.stats is not None:
                    self.stats.close()
        return result

    def _timed_step(self, step: int, data_iter: Iterator[dict]) -> dict[str, float]:
        start = time.perf_counter()
        values, data_time = self.run_step(step, data_iter)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        step_time = time.perf_counter() - start
        self._remember_boundary(step)
        if self.stats is not None:
            self.stats.update(values, step_time, data_time)
            if self.stats.should_log(step):
                self.stats.log(step, self.lr_updater.lr)
        return values

    def _remember_boundary(self, step: int) -> None:
        loader_state = self.loader.state_dict() if hasattr(self.loader, "state_dict") else None
        self._boundary = _Boundary(step, loader_state, capture_rng_state()) if step >= 0 else None

    def _next_batch(self, data_iter: Iterator[dict]) -> dict:
        if self._pending_batch is not None:
            batch, self._pending_batch = self._pending_batch, None
            return batch
        try:
            return next(data_iter)
        except Exception as error:
            if self._signals is not None and self._signals.requested:
                raise _StoppedWhileFetching from error
            raise

    def run_step(self, step: int, data_iter: Iterator[dict]) -> tuple[dict[str, float], float]:
        """One optimizer update from `iter_size` minibatches; returns (mean values, data time)."""
        iter_size = self.options.iter_size
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        data_time = 0.0
        for micro in range(iter_size):
            fetch_start = time.perf_counter()
            batch = self._next_batch(data_iter)
            if self.device is not None:
                batch = move_to(batch, self.device)
            data_time += time.perf_counter() - fetch_start
            no_sync = micro < iter_size - 1 and hasattr(self.model, "no_sync")
            with self.model.no_sync() if no_sync else contextlib.nullcontext():
                with self.amp.autocast():
                    outputs = self.forward_fn(self.model, batch)
                losses, metrics = split_outputs(outputs)
                total = torch.stack([value.float() for value in losses.values()]).sum()
                values = self._reduced_values(step, total, losses, metrics)
                self.amp.backward(total / iter_size)
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value / iter_size
        self._updating = True
        self.lr_updater.set_lr(self.schedule(step))
        if self.options.clip_grad_norm > 0:
            self.amp.unscale(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.options.clip_grad_norm))
        self.amp.step(self.optimizer)
        self._updating = False
        return totals, data_time

    def _reduced_values(
        self, step: int, total: torch.Tensor, losses: dict[str, torch.Tensor], metrics: dict[str, torch.Tensor]
    ) -> dict[str, float]:
        """Loss and metric values averaged over processes; raises on a non-finite loss.

        The stop request of this process travels in the same reduction, so a signal received
        by one process stops all of them after the same step.
        """
        names = ["loss", *sorted(losses), *sorted(metrics)]
        entries = [total.detach(), *(losses[k].detach() for k in sorted(losses))]
        entries += [metrics[k].detach() for k in sorted(metrics)]
        stop = 1.0 if self._signals is not None and self._signals.requested else 0.0
        vector = torch.stack([e.float().to(total.device) for e in entries] + [total.new_tensor(stop)])
        reduced = all_reduce_mean(vector).tolist()
        if reduced[-1] > 0:
            self._stop_everywhere = True
        values = dict(zip(names, reduced[:-1]))
        bad = non_finite_terms({k: v for k, v in values.items() if k == "loss" or k in losses})
        if bad:
            raise NonFiniteLossError(step, bad)
        return values
