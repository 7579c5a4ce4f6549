"""Evaluation every `period` steps and after the last step; the best weights kept by one metric."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pydetectron.engine.checkpoint import save_checkpoint
from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.metrics import MetricsWriter
from pydetectron.engine.rng import capture_rng_state, restore_rng_state
from pydetectron.parallel.distributed import barrier, unwrap_model

logger = logging.getLogger(__name__)

# (weights to evaluate, step) -> {metric name: value}, e.g. {"bbox/AP": 0.41, "bbox/AP50": 0.62, ...}
EvaluateFn = Callable[[dict[str, torch.Tensor], int], dict[str, float]]


class EvaluationHook(Hook):
    """Runs `evaluate` on the model's weights (or those `weights(trainer)` gives, e.g. the EMA).

    When: after every step `s` with `(s + 1) % period == 0`, and after the last step of the
    schedule; not when a stop was already requested (the run should end quickly then), and an
    evaluation that fails after a stop request is skipped. Only the main process evaluates;
    the others wait for it. The evaluation runs with the random
    number generators saved and restored, so training continues exactly as without it.

    It logs the metrics, hands them to `writers` (the metrics.jsonl and TensorBoard writers of
    the run) at the step, and, with `best_metric`, writes `best_path` (atomically) whenever
    that metric beats its best value so far (higher is better): the evaluated weights, the
    step, the metric and its value, all metrics, plus `extras` (the config text), so the
    file loads like any checkpoint for testing (`Predictor.from_checkpoint`, test_net.py).
    """

    def __init__(
        self,
        period: int,
        evaluate: EvaluateFn,
        best_metric: str = "",
        best_path: str | Path | None = None,
        writers: Sequence[MetricsWriter] = (),
        weights: Callable[[Any], dict[str, torch.Tensor]] | None = None,
        extras: dict[str, Any] | None = None,
    ):
        if period < 1:
            raise ValueError(f"the evaluation period must be >= 1 step, got {period}")
        if best_metric and best_path is None:
            raise ValueError("best_metric needs best_path (where the best weights go)")
        self.period = int(period)
        self.evaluate = evaluate
        self.best_metric = best_metric
        self.best_path = Path(best_path) if best_path is not None else None
        self.writers = list(writers)
        self.weights = weights or (lambda trainer: unwrap_model(trainer.model).state_dict())
        self.extras = dict(extras or {})
        self.best_value = -math.inf
        self.best_step = -1
        self.last_metrics: dict[str, float] = {}
        self._warned_missing = False

    def due(self, trainer, step: int) -> bool:
        return (step + 1) % self.period == 0 or step == trainer.options.max_iter - 1

    def after_step(self, trainer, step: int, values: dict[str, float]) -> None:
        if not self.due(trainer, step):
            return
        if trainer.stop_requested:
            logger.warning("Evaluation at step %d skipped: a stop was requested", step)
            return
        if trainer.dist.is_main:
            try:
                self.run(trainer, step)
            except Exception as error:
                if not trainer.stop_requested:
                    raise
                # e.g. a loader worker of the evaluation hit by the signal while it started
                logger.warning("Evaluation at step %d ended by the stop request (%s): skipped", step,
                               " ".join(str(error).split())[:200])  # fmt: skip
        barrier()

    def run(self, trainer, step: int) -> dict[str, float]:
        """Evaluate the weights after `step` now; returns the metrics."""
        rng = capture_rng_state()
        try:
            weights = {key: value.detach() for key, value in self.weights(trainer).items()}
            metrics = {key: float(value) for key, value in self.evaluate(weights, step).items()}
        finally:
            restore_rng_state(rng)
        self.last_metrics = metrics
        shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
        logger.info("Evaluation at step %d (fractions of 1): %s", step, shown or "no metrics")
        for writer in self.writers:
            writer.write(step, metrics)
        if self.best_metric:
            self._keep_best(step, metrics, weights)
        return metrics

    def _keep_best(self, step: int, metrics: dict[str, float], weights: dict[str, torch.Tensor]) -> None:
        value = metrics.get(self.best_metric)
        if value is None:
            if not self._warned_missing:
                logger.warning(
                    "--best_metric %s is not among the evaluation metrics (%s): no best checkpoint is kept",
                    self.best_metric,
                    ", ".join(metrics) or "none",
                )
                self._warned_missing = True
            return
        if not value > self.best_value:
            logger.info("%s %.4f: the best stays %.4f of step %d", self.best_metric, value, self.best_value,
                        self.best_step)  # fmt: skip
            return
        self.best_value, self.best_step = value, step
        state = {
            "model": {key: tensor.cpu() for key, tensor in weights.items()},
            "step": step,
            "best_metric": self.best_metric,
            "best_value": value,
            "metrics": dict(metrics),
            **self.extras,
        }
        save_checkpoint(state, self.best_path)
        logger.info("New best %s %.4f at step %d: saved %s", self.best_metric, value, step, self.best_path)

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_step": self.best_step, "best_metric": self.best_metric}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("best_metric", self.best_metric) != self.best_metric:
            logger.warning(
                "the checkpoint tracked the best %s, this run tracks %s: the best value starts anew",
                state.get("best_metric"),
                self.best_metric,
            )
            return
        self.best_value = float(state.get("best_value", -math.inf))
        self.best_step = int(state.get("best_step", -1))
