"""The training loop: steps with iter_size accumulation, LR, AMP and clipping; hooks do the rest.

One step (0-based index `step`) runs `iter_size` forward/backward passes on consecutive
minibatches, each loss divided by `iter_size` (the gradients of one batch `iter_size` times
as large), then sets the LR of `step`, optionally clips the gradient norm, and updates.
Loss values are averaged over the data-parallel processes, and a stop request travels in
the same reduction, so every process stops after the same step.

Everything around the steps (checkpoints, logging, signals, the non-finite loss check,
evaluation, EMA) is a hook (`pydetectron.engine.hooks`, interface in `hooks/base.py`); a
new feature is a new hook, registered with `register_hooks`, not a change of this loop.

After every finished step the trainer remembers the loader position and the RNG states; a
checkpoint is that state plus the model, optimizer, loss scaler and the hooks' states, so
resuming from it repeats the uninterrupted run exactly (same batches, random draws, updates).
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
from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.losses import split_outputs
from pydetectron.engine.lr_schedule import LRSchedule
from pydetectron.engine.optimizer import LRUpdater, SolverSettings
from pydetectron.engine.rng import capture_rng_state, restore_rng_state
from pydetectron.parallel.distributed import DistributedInfo, all_gather_objects, all_reduce_mean, unwrap_model
from pydetectron.parallel.scatter_gather import move_to

logger = logging.getLogger(__name__)

ForwardFn = Callable[[nn.Module, dict], dict]


def detection_forward(model: nn.Module, batch: dict) -> dict:
    """Call a detection model on a training minibatch of the data loader."""
    return model(batch["data"], batch["im_info"], batch["targets"])


@dataclass(frozen=True)
class TrainerOptions:
    """How long and how to step (the tool fills these from the config and flags)."""

    max_iter: int
    iter_size: int = 1
    clip_grad_norm: float = 0.0

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise ValueError(f"SOLVER.MAX_ITER must be >= 1, got {self.max_iter}")
        if self.iter_size < 1:
            raise ValueError(f"iter_size must be >= 1, got {self.iter_size}")
        if self.clip_grad_norm < 0:
            raise ValueError(f"SOLVER.CLIP_GRAD_NORM must be >= 0, got {self.clip_grad_norm}")


@dataclass
class TrainResult:
    """How training ended.

    last_step: the last finished step (start - 1 when none); checkpoint: the newest one
    written (set by the checkpoint hook); stopped_by: '' (ran to the end or failed), or the
    signal that stopped it; error: the exception that ended it, if any; history: every
    step's values when the trainer keeps them (tests).
    """

    last_step: int
    checkpoint: Path | None = None
    stopped_by: str = ""
    error: BaseException | None = None
    history: list[dict[str, float]] = field(default_factory=list)


class _StoppedWhileFetching(Exception):
    """The data loader failed after a stop request (e.g. its workers got the signal too)."""


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
            them) go into checkpoints for exact resuming.
        options: max_iter, iter_size, clip_grad_norm.
        solver: the momentum-correction settings of LR changes.
        device: where inputs go (None: leave them where they are, e.g. for DataParallel).
        amp: mixed precision (default: none).
        dist_info: this process's rank and the world size.
        forward_fn: how a minibatch goes through the model.
        hooks: see `pydetectron.engine.hooks`; `register_hooks` adds more.
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
        dist_info: DistributedInfo | None = None,
        forward_fn: ForwardFn = detection_forward,
        hooks: Iterable[Hook] = (),
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
        self.dist = dist_info or DistributedInfo()
        self.forward_fn = forward_fn
        self.keep_history = keep_history
        self.hooks: list[Hook] = []
        self.register_hooks(*hooks)
        self.step_time = 0.0
        self.data_time = 0.0
        self._rng_to_restore: dict | None = None
        self._boundary: _Boundary | None = None
        self._pending_batch: dict | None = None
        self._updating = False
        self._stop_reason = ""
        self._stop_everywhere = False

    # ------------------------------------------------------------------ hooks
    def register_hooks(self, *hooks: Hook) -> None:
        """Add hooks (called in registration order; `after_train` in reverse order)."""
        names = {hook.name for hook in self.hooks}
        for hook in hooks:
            if hook.name in names:
                raise ValueError(f"a hook named {hook.name!r} is registered already (hook names key their state)")
            names.add(hook.name)
            self.hooks.append(hook)

    def _call(self, method: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, method)(self, *args)

    def _after_train(self, result: TrainResult) -> None:
        """Every hook's after_train, even when one fails; the first failure is raised after."""
        failure: BaseException | None = None
        for hook in reversed(self.hooks):
            try:
                hook.after_train(self, result)
            except BaseException as error:  # noqa: B036  (the other hooks must still clean up)
                if failure is None:
                    failure = error
                else:
                    logger.error("%s.after_train failed too: %s", hook.name, error)
        if failure is None:
            return
        if result.error is None:
            raise failure
        logger.error("a hook failed while training ended with %s: %s", type(result.error).__name__, failure)

    # ------------------------------------------------------------------ state for hooks
    @property
    def lr(self) -> float:
        """The base LR of the current (or last) step."""
        return self.lr_updater.lr

    @property
    def stop_requested(self) -> bool:
        """A stop was asked for on this process (or agreed on by all)."""
        return bool(self._stop_reason) or self._stop_everywhere

    def request_stop(self, reason: str) -> None:
        """Stop after the current step (all processes stop after the same one); `reason` is logged."""
        if not self._stop_reason:
            self._stop_reason = reason

    @property
    def last_finished_step(self) -> int | None:
        return self._boundary.step if self._boundary is not None else None

    @property
    def can_save_after_interrupt(self) -> bool:
        """Whether the state of the last finished step is intact after an interruption now."""
        return self._boundary is not None and not self._updating and self.dist.world_size == 1

    # ------------------------------------------------------------------ checkpoints
    def resume(self, checkpoint: dict[str, Any]) -> int:
        """Load model, optimizer, scaler, loader position, RNG and hook states; returns the next step."""
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
        hook_states = checkpoint.get("hooks") or {}
        for hook in self.hooks:
            if hook.name in hook_states:
                hook.load_state_dict(hook_states[hook.name])
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
        hook_states = {hook.name: hook.state_dict() for hook in self.hooks}
        state["hooks"] = {name: hook_state for name, hook_state in hook_states.items() if hook_state}
        if self.dist.world_size > 1:
            state["rng_per_rank"] = rng_states
        return state

    # ------------------------------------------------------------------ the loop
    def train(self, start_step: int = 0) -> TrainResult:
        """Run steps `start_step` .. max_iter - 1 (or until a stop), with the hooks around them."""
        result = TrainResult(last_step=start_step - 1)
        self._boundary = None
        self._stop_reason, self._stop_everywhere = "", False
        try:
            self._call("before_train")
            if start_step >= self.options.max_iter:
                logger.info("start step %d >= MAX_ITER %d: nothing to train", start_step, self.options.max_iter)
            else:
                self._run_steps(start_step, result)
        except _StoppedWhileFetching as error:
            result.stopped_by = self._stop_reason or "a signal on another process"
            logger.warning(
                "the data loader stopped after %s (%s): keeping the state after step %d",
                result.stopped_by,
                error.__cause__,
                result.last_step,
            )
        except BaseException as error:
            result.error = error
            if isinstance(error, KeyboardInterrupt):
                logger.warning("interrupted in step %d", result.last_step + 1)
            raise
        finally:
            self._after_train(result)
        return result

    def _should_stop(self) -> bool:
        return self._stop_everywhere or (self.dist.world_size == 1 and bool(self._stop_reason))

    def _run_steps(self, start_step: int, result: TrainResult) -> None:
        self.model.train()
        data_iter = iter(self.loader)
        # The first batch is fetched before restoring the RNG states: creating the data
        # iterator draws random numbers, which the uninterrupted run did before its first step.
        self._pending_batch = self._fetch(data_iter)
        if self._rng_to_restore is not None:
            restore_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        for step in range(start_step, self.options.max_iter):
            if self._should_stop():
                break
            self._call("before_step", step)
            try:
                values = self._timed_step(step, data_iter)
            except RuntimeError as error:
                # torch reports a killed loader worker wherever the main process happens to be
                if self.stop_requested and not self._updating and "DataLoader worker" in str(error):
                    raise _StoppedWhileFetching from error
                raise
            result.last_step = step
            if self.keep_history:
                result.history.append(values)
            self._call("after_step", step, values)
        if self._should_stop():
            result.stopped_by = self._stop_reason or "a signal on another process"

    def _timed_step(self, step: int, data_iter: Iterator[dict]) -> dict[str, float]:
        start = time.perf_counter()
        values, data_time = self.run_step(step, data_iter)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.step_time = time.perf_counter() - start
        self.data_time = data_time
        loader_state = self.loader.state_dict() if hasattr(self.loader, "state_dict") else None
        self._boundary = _Boundary(step, loader_state, capture_rng_state())
        return values

    def _fetch(self, data_iter: Iterator[dict]) -> dict:
        try:
            return next(data_iter)
        except Exception as error:
            if self.stop_requested:
                raise _StoppedWhileFetching from error
            raise

    def _next_batch(self, data_iter: Iterator[dict]) -> dict:
        if self._pending_batch is not None:
            batch, self._pending_batch = self._pending_batch, None
            return batch
        return self._fetch(data_iter)

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
                values = self._reduced_values(total, losses, metrics)
                self.amp.backward(total / iter_size)
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value / iter_size
        self._call("before_update", step, totals)
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
        self, total: torch.Tensor, losses: dict[str, torch.Tensor], metrics: dict[str, torch.Tensor]
    ) -> dict[str, float]:
        """Loss and metric values averaged over processes.

        The stop request of this process travels in the same reduction, so a signal received
        by one process stops all of them after the same step.
        """
        names = ["loss", *sorted(losses), *sorted(metrics)]
        entries = [total.detach(), *(losses[k].detach() for k in sorted(losses))]
        entries += [metrics[k].detach() for k in sorted(metrics)]
        stop = 1.0 if self._stop_reason else 0.0
        vector = torch.stack([e.float().to(total.device) for e in entries] + [total.new_tensor(stop)])
        reduced = all_reduce_mean(vector).tolist()
        if reduced[-1] > 0:
            self._stop_everywhere = True
        return dict(zip(names, reduced[:-1]))
