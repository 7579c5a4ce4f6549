"""The standard hooks of a training run, in the order they must run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydetectron.engine.checkpoint import Checkpointer
from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.hooks.checkpointing import CheckpointHook
from pydetectron.engine.hooks.ema import EMAHook
from pydetectron.engine.hooks.evaluation import EvaluateFn, EvaluationHook
from pydetectron.engine.hooks.lr_logging import LRChangeLogger
from pydetectron.engine.hooks.metrics import MetricsHook
from pydetectron.engine.hooks.non_finite import StopOnNonFiniteLoss
from pydetectron.engine.hooks.stop_signals import StopOnSignal
from pydetectron.engine.metrics import MetricsWriter, TrainingStats


def default_hooks(
    *,
    checkpointer: Checkpointer | None = None,
    snapshot_period: int = 0,
    checkpoint_extras: dict[str, Any] | None = None,
    stats: TrainingStats | None = None,
    handle_signals: bool = True,
    signal_repeat_window: float = 0.0,
    lr_log_threshold: float = 1.1,
    ema_decay: float = 0.0,
    evaluate: EvaluateFn | None = None,
    eval_period: int = 0,
    best_metric: str = "",
    best_path: str | Path | None = None,
    writers: Sequence[MetricsWriter] = (),
) -> list[Hook]:
    """Signals, non-finite loss stop, LR change lines, metrics, EMA, evaluation, checkpoints.

    In this order: the signal handlers are installed first and restored last; the metrics
    line of a step comes before its evaluation; the EMA is updated before it is evaluated;
    the checkpoint of a step is written after its evaluation, so it holds the best value so
    far. Pass None / 0 to leave a hook out (e.g. `stats` on processes other than rank 0).
    With EMA, the evaluation and the best checkpoint use the averaged weights.
    """
    hooks: list[Hook] = []
    if handle_signals:
        hooks.append(StopOnSignal(repeat_window=signal_repeat_window))
    hooks += [StopOnNonFiniteLoss(), LRChangeLogger(lr_log_threshold)]
    if stats is not None:
        hooks.append(MetricsHook(stats))
    ema = EMAHook(ema_decay) if ema_decay > 0 else None
    if ema is not None:
        hooks.append(ema)
    if evaluate is not None and eval_period > 0:
        weights = (lambda trainer: ema.averaged_state()) if ema is not None else None
        hooks.append(
            EvaluationHook(eval_period, evaluate, best_metric, best_path, writers, weights, checkpoint_extras)
        )
    if checkpointer is not None:
        hooks.append(CheckpointHook(checkpointer, snapshot_period, checkpoint_extras))
    return hooks
