"""The hook interface of the training loop.

The trainer calls, in this order, for every registered hook:

    before_train(trainer)                    once, before the first step (also when resuming)
    for each step:
        before_step(trainer, step)
        before_update(trainer, step, values)  losses known and gradients computed, before the
                                              optimizer changes anything; raising here stops
                                              training with the weights of the previous step
        after_step(trainer, step, values)     the step is finished (weights updated)
    after_train(trainer, result)             always, in reverse order of registration, also
                                              when training ends with an exception

`values` holds the step's scalars averaged over `iter_size` and over the processes: 'loss',
every 'loss*' term, the model's metrics, and after the update 'grad_norm' when clipping.
`result` is the `TrainResult` (`last_step`, `stopped_by`, `error`, `checkpoint`).

A hook with state that must survive a resume returns it from `state_dict()` (tensors, dicts,
lists, strings, numbers: what `torch.load(weights_only=True)` reads) and takes it back in
`load_state_dict()`; the checkpoint stores it under `hooks/<hook.name>`. Hooks must not draw
from the global random number generators (or must restore them, as the evaluation hook
does), so that a run with a hook resumes exactly like a run without it.

The trainer offers hooks: `model`, `optimizer`, `schedule`, `loader`, `options` (`max_iter`,
...), `dist`, `lr` (the base LR of the step), `step_time` / `data_time` (seconds of the last
step), `request_stop(reason)`, `stop_requested`, `last_finished_step`, `checkpoint_state()`
and `can_save_after_interrupt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydetectron.engine.trainer import Trainer, TrainResult


class Hook:
    """Base class: every method does nothing; override the ones a hook needs."""

    @property
    def name(self) -> str:
        """Key of this hook's state in checkpoints (unique among a trainer's hooks)."""
        return type(self).__name__

    def before_train(self, trainer: Trainer) -> None:
        pass

    def before_step(self, trainer: Trainer, step: int) -> None:
        pass

    def before_update(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        pass

    def after_step(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        pass

    def after_train(self, trainer: Trainer, result: TrainResult) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
