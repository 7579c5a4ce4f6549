"""Weight fills with Caffe2 semantics, so layers start where Detectron's start.

Caffe2 computes fans from the tensor layout alone: ``fan_in = numel / shape[0]`` and
``fan_out = numel / shape[1]``. For a conv weight ``[out, in/groups, kh, kw]`` this is
``in/groups * kh * kw`` and ``out * kh * kw``; for a linear weight ``[out, in]`` it is
``in`` and ``out``.
"""

import math

import torch


def _fan_in(tensor: torch.Tensor) -> int:
    if tensor.dim() < 2:
        raise ValueError(f"weight fill needs a tensor with >= 2 dims, got shape {tuple(tensor.shape)}")
    return tensor.numel() // tensor.shape[0]


def _fan_out(tensor: torch.Tensor) -> int:
    if tensor.dim() < 2:
        raise ValueError(f"weight fill needs a tensor with >= 2 dims, got shape {tuple(tensor.shape)}")
    return tensor.numel() // tensor.shape[1]


@torch.no_grad()
def xavier_fill_(tensor: torch.Tensor) -> torch.Tensor:
    """Caffe2 XavierFill: uniform in [-s, s] with s = sqrt(3 / fan_in)."""
    bound = math.sqrt(3.0 / _fan_in(tensor))
    return tensor.uniform_(-bound, bound)


@torch.no_grad()
def msra_fill_(tensor: torch.Tensor) -> torch.Tensor:
    """Caffe2 MSRAFill: normal with std sqrt(2 / fan_out) (He init, fan-out mode)."""
    std = math.sqrt(2.0 / _fan_out(tensor))
    return tensor.normal_(0.0, std)


@torch.no_grad()
def gaussian_fill_(tensor: torch.Tensor, std: float = 0.01) -> torch.Tensor:
    """Caffe2 GaussianFill: normal with mean 0 and the given std."""
    return tensor.normal_(0.0, std)


@torch.no_grad()
def constant_fill_(tensor: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Caffe2 ConstantFill: every element set to ``value``."""
    return tensor.fill_(value)


FILLS = {
    "XavierFill": xavier_fill_,
    "MSRAFill": msra_fill_,
    "GaussianFill": gaussian_fill_,
}


def fill_by_name(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Apply a fill given by its Detectron name (e.g. a ``*.CONV_INIT`` config value)."""
    if name not in FILLS:
        raise ValueError(f"unknown weight fill {name!r}; expected one of {sorted(FILLS)}")
    return FILLS[name](tensor)
