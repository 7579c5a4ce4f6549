"""Argument checks of the public ops: a bad call raises a ValueError or TypeError that
names the argument and the expected form before anything reaches a compiled kernel.

The checks read only shapes, dtypes and devices (never tensor values), so they also run
while `torch.compile` traces with fake tensors.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

ROIS_FORM = "a [K, 5] tensor (batch_index, x1, y1, x2, y2) or a list of per-image [Ki, 4] tensors"


def check_tensor(value: object, name: str, op: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(t: Tensor, name: str, op: str) -> None:
    if not t.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating point tensor, got {t.dtype}")


def check_feature_map(input: object, op: str) -> Tensor:
    """`input` is a floating [N, C, H, W] tensor."""
    t = check_tensor(input, "input", op)
    if t.dim() != 4:
        raise ValueError(f"{op}: input must be a 4-D [N, C, H, W] tensor, got shape {tuple(t.shape)}")
    check_floating(t, "input", op)
    return t


def _autocast_on(device: torch.device) -> bool:
    """Autocast casts both tensors to float32 inside the op, so dtypes may differ."""
    return device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type)


def check_same_dtype(a: Tensor, b: Tensor, names: tuple[str, str], op: str) -> None:
    if a.dtype != b.dtype and not _autocast_on(a.device):
        raise TypeError(
            f"{op}: {names[0]} and {names[1]} must have the same dtype, got {a.dtype} and {b.dtype}"
        )


def check_same_device(a: Tensor, b: Tensor, names: tuple[str, str], op: str) -> None:
    if a.device != b.device:
        raise ValueError(
            f"{op}: {names[0]} and {names[1]} must be on the same device, "
            f"got {a.device} and {b.device}"
        )


def as_rois(rois: object, input: Tensor, op: str) -> Tensor:
    """Returns `rois` as a [K, 5] tensor; a list of per-image [Ki, 4] boxes gets its index."""
    if isinstance(rois, Tensor):
        if rois.dim() == 2 and rois.shape[1] == 4:
            raise ValueError(
                f"{op}: rois is a [K, 4] tensor without batch index; pass {ROIS_FORM}"
            )
        if rois.dim() != 2 or rois.shape[1] != 5:
            raise ValueError(f"{op}: rois must be {ROIS_FORM}, got shape {tuple(rois.shape)}")
        tensor = rois
    elif isinstance(rois, Sequence) and not isinstance(rois, str):
        tensor = _boxes_list_to_rois(rois, input, op)
    else:
        raise TypeError(f"{op}: rois must be {ROIS_FORM}, got {type(rois).__name__}")
    check_floating(tensor, "rois", op)
    check_same_device(input, tensor, ("input", "rois"), op)
    check_same_dtype(input, tensor, ("input", "rois"), op)
    return tensor


def _boxes_list_to_rois(boxes: Sequence[object], input: Tensor, op: str) -> Tensor:
    parts = []
    for i, b in enumerate(boxes):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: rois[{i}] must be a [Ki, 4] tensor, got {type(b).__name__}")
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(
                f"{op}: rois[{i}] must be a [Ki, 4] tensor (x1, y1, x2, y2), "
                f"got shape {tuple(b.shape)}"
            )
        check_same_device(input, b, ("input", f"rois[{i}]"), op)
        parts.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))
    if not parts:
        return input.new_zeros((0, 5))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def as_output_size(output_size: object, op: str) -> tuple[int, int]:
    """`output_size` is a positive int or a (height, width) pair of positive ints."""
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        values = tuple(output_size)
        if len(values) != 2:
            raise ValueError(
                f"{op}: output_size must be an int or a (height, width) pair, got {output_size!r}"
            )
    else:
        values = (output_size, output_size)
    if not all(_is_int(v) for v in values):
        raise TypeError(
            f"{op}: output_size must be an int or a (height, width) pair of ints, "
            f"got {output_size!r}"
        )
    height, width = (int(v) for v in values)
    if height <= 0 or width <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    return height, width


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral | torch.SymInt) and not isinstance(value, bool)


def as_positive_float(value: object, name: str, op: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    result = float(value)
    if not (math.isfinite(result) and result > 0):
        raise ValueError(f"{op}: {name} must be a positive finite number, got {value!r}")
    return result


def as_int(value: object, name: str, op: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


def as_bool(value: object, name: str, op: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return value
