"""An exponential moving average (EMA) of the model's weights, kept while training."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from pydetectron.engine.hooks.base import Hook
from pydetectron.parallel.distributed import unwrap_model


class EMAHook(Hook):
    """After every step: `average = decay * average + (1 - decay) * weights`.

    Every floating-point tensor of the model's state dict is averaged (BatchNorm running
    statistics included); integer buffers are copied. The average starts from the weights
    at the first step of training and is stored in checkpoints (`hooks/EMAHook`), so a
    resumed run continues it exactly. `averaged_state()` is what the evaluation hook tests
    when EMA is on.
    """

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.average: dict[str, torch.Tensor] | None = None
        self.num_updates = 0

    @staticmethod
    def _state(trainer) -> dict[str, torch.Tensor]:
        return unwrap_model(trainer.model).state_dict()

    def before_train(self, trainer) -> None:
        if self.average is None:
            self.average = {key: value.detach().clone() for key, value in self._state(trainer).items()}
        else:
            state = self._state(trainer)
            self.average = {key: value.to(state[key].device) for key, value in self.average.items()}

    @torch.no_grad()
    def after_step(self, trainer, step: int, values: dict[str, float]) -> None:
        assert self.average is not None, "EMAHook.before_train was not called"
        for key, value in self._state(trainer).items():
            average = self.average[key]
            if average.is_floating_point():
                average.lerp_(value.detach().to(average.dtype), 1.0 - self.decay)
            else:
                average.copy_(value)
        self.num_updates += 1

    def averaged_state(self) -> dict[str, torch.Tensor]:
        """The averaged state dict (the model's keys)."""
        if self.average is None:
            raise RuntimeError("the EMA has not started: no training step has run")
        return self.average

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A copy of `model` holding the averaged weights."""
        copied = copy.deepcopy(unwrap_model(model))
        copied.load_state_dict(self.averaged_state())
        return copied

    def state_dict(self) -> dict[str, Any]:
        if self.average is None:
            return {}
        return {"decay": self.decay, "num_updates": self.num_updates, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.average = {key: value.clone() for key, value in state["average"].items()}
        self.num_updates = int(state["num_updates"])
