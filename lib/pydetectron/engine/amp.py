"""Mixed precision for training: fp16 with loss scaling on CUDA, bf16 autocast on CUDA or CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

AMP_MODES = ("", "fp16", "bf16")


class MixedPrecision:
    """The autocast context and (fp16 only) the GradScaler for one training run.

    mode '' is full float32; 'bf16' autocasts to bfloat16 (no loss scaling needed);
    'fp16' autocasts to float16 and scales the loss (CUDA only).
    """

    def __init__(self, mode: str, device: torch.device | str):
        device = torch.device(device)
        if mode not in AMP_MODES:
            raise ValueError(f"--amp / TRAIN.AMP: unknown mode {mode!r}; expected one of {AMP_MODES}")
        if mode == "fp16" and device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        self.mode = mode
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None

    @property
    def dtype(self) -> torch.dtype | None:
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.mode)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if not self.mode:
            yield
            return
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true scale (before clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """`optimizer.step()`; with loss scaling, skipped when the gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
