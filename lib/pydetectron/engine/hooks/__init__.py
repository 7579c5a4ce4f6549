"""Training hooks: what happens around the steps of `Trainer`, one class each (see `base.Hook`)."""

from pydetectron.engine.hooks.base import Hook
from pydetectron.engine.hooks.checkpointing import CheckpointHook
from pydetectron.engine.hooks.defaults import default_hooks
from pydetectron.engine.hooks.ema import EMAHook
from pydetectron.engine.hooks.evaluation import EvaluationHook
from pydetectron.engine.hooks.lr_logging import LRChangeLogger
from pydetectron.engine.hooks.metrics import MetricsHook
from pydetectron.engine.hooks.non_finite import StopOnNonFiniteLoss
from pydetectron.engine.hooks.stop_signals import StopOnSignal

__all__ = [
    "CheckpointHook",
    "EMAHook",
    "EvaluationHook",
    "Hook",
    "LRChangeLogger",
    "MetricsHook",
    "StopOnNonFiniteLoss",
    "StopOnSignal",
    "default_hooks",
]
