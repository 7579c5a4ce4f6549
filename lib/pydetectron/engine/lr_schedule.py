"""The learning rate as a pure function of the step: Detectron's LR policies and warm-up.

`LRSchedule(step)` is Detectron's `lr_policy.get_lr_at_iter`: the policy's value at `step`
(0-based iteration index), multiplied during the first WARM_UP_ITERS steps by the warm-up
factor (constant: WARM_UP_FACTOR; linear: from WARM_UP_FACTOR at step 0 towards 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

LR_POLICIES = ("step", "steps_with_decay", "steps_with_lrs", "steps_with_relative_lrs", "cosine_decay", "exp_decay")
WARM_UP_METHODS = ("linear", "constant")


@dataclass(frozen=True)
class LRSchedule:
    """Detectron's SOLVER.* learning-rate settings; call it with a step to get the LR.

    Policies (SOLVER.LR_POLICY):
        step: BASE_LR * GAMMA ** (step // STEP_SIZE)
        steps_with_decay: BASE_LR * GAMMA ** i, i the index of the last STEPS entry <= step
        steps_with_lrs: LRS[i]
        steps_with_relative_lrs: BASE_LR * LRS[i]
        cosine_decay: BASE_LR * (cos(pi * step / MAX_ITER) + 1) / 2
        exp_decay: BASE_LR * GAMMA ** (step / MAX_ITER)  (GAMMA = final / initial LR)
    The `steps_*` policies need STEPS to start at 0 (Detectron's convention, e.g. [0, 60000, 80000]).
    """

    base_lr: float
    policy: str = "steps_with_decay"
    gamma: float = 0.1
    step_size: int = 30000
    steps: tuple[int, ...] = (0,)
    lrs: tuple[float, ...] = field(default_factory=tuple)
    max_iter: int = 40000
    warm_up_iters: int = 500
    warm_up_factor: float = 1.0 / 3.0
    warm_up_method: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(self, "lrs", tuple(float(v) for v in self.lrs))
        if self.policy not in LR_POLICIES:
            raise ValueError(f"SOLVER.LR_POLICY: unknown policy {self.policy!r}; expected one of {LR_POLICIES}")
        if self.warm_up_method not in WARM_UP_METHODS:
            raise ValueError(
                f"SOLVER.WARM_UP_METHOD: unknown method {self.warm_up_method!r}; expected one of {WARM_UP_METHODS}"
            )
        if self.max_iter <= 0:
            raise ValueError(f"SOLVER.MAX_ITER must be > 0, got {self.max_iter}")
        if self.warm_up_iters < 0:
            raise ValueError(f"SOLVER.WARM_UP_ITERS must be >= 0, got {self.warm_up_iters}")
        if self.policy == "step" and self.step_size <= 0:
            raise ValueError(f"SOLVER.STEP_SIZE must be > 0 for the 'step' policy, got {self.step_size}")
        if self.policy.startswith("steps_"):
            self._check_steps()

    def _check_steps(self) -> None:
        steps = self.steps
        if not steps or steps[0] != 0:
            raise ValueError(
                f"SOLVER.STEPS must start with 0 for LR_POLICY {self.policy!r} (Detectron's convention, "
                f"e.g. [0, 60000, 80000]), got {list(steps)}"
            )
        if any(b < a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"SOLVER.STEPS must be non-decreasing, got {list(steps)}")
        if self.policy in ("steps_with_lrs", "steps_with_relative_lrs") and len(self.lrs) != len(steps):
            raise ValueError(
                f"SOLVER.LRS needs one value per SOLVER.STEPS entry for {self.policy!r}: "
                f"{len(self.lrs)} LRS vs {len(steps)} STEPS"
            )

    @classmethod
    def from_cfg(cls, cfg: Any) -> LRSchedule:
        """Read SOLVER.{BASE_LR, LR_POLICY, GAMMA, STEP_SIZE, STEPS, LRS, MAX_ITER, WARM_UP_*}."""
        s = cfg.SOLVER
        return cls(
            base_lr=float(s.BASE_LR),
            policy=str(s.LR_POLICY),
            gamma=float(s.GAMMA),
            step_size=int(s.STEP_SIZE),
            steps=tuple(s.STEPS),
            lrs=tuple(s.LRS),
            max_iter=int(s.MAX_ITER),
            warm_up_iters=int(s.WARM_UP_ITERS),
            warm_up_factor=float(s.WARM_UP_FACTOR),
            warm_up_method=str(s.WARM_UP_METHOD),
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LRSchedule:
        return cls(**dict(values))

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists for the sequences), fit for a checkpoint or a JSON file."""
        values = asdict(self)
        values["steps"], values["lrs"] = list(self.steps), list(self.lrs)
        return values

    def step_index(self, step: int) -> int:
        """Index of the last STEPS entry <= step (Detectron's `get_step_index`)."""
        index = 0
        for i, boundary in enumerate(self.steps):
            if step >= boundary:
                index = i
        return index

    def policy_lr(self, step: int) -> float:
        """The policy's LR at `step`, without warm-up."""
        if self.policy == "step":
            return self.base_lr * self.gamma ** (step // self.step_size)
        if self.policy == "steps_with_decay":
            return self.base_lr * self.gamma ** self.step_index(step)
        if self.policy == "steps_with_lrs":
            return self.lrs[self.step_index(step)]
        if self.policy == "steps_with_relative_lrs":
            return self.base_lr * self.lrs[self.step_index(step)]
        if self.policy == "cosine_decay":
            return self.base_lr * 0.5 * (math.cos(math.pi * step / self.max_iter) + 1.0)
        return self.base_lr * math.exp(math.log(self.gamma) * step / self.max_iter)  # exp_decay

    def warm_up(self, step: int) -> float:
        """The warm-up multiplier at `step` (1 once warm-up is over)."""
        if step >= self.warm_up_iters:
            return 1.0
        if self.warm_up_method == "constant":
            return self.warm_up_factor
        alpha = step / self.warm_up_iters
        return self.warm_up_factor * (1.0 - alpha) + alpha

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"the step must be >= 0, got {step}")
        return self.policy_lr(step) * self.warm_up(step)
