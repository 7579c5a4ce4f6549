"""Reading backbone weights files safely and checking that a state dict fits a backbone.

Shared by the toolbox families (`Backbone.load_pretrained`) and the ported ones
(`PortedBackbone.load_pretrained`): a `.safetensors` file is read with the safetensors
package and anything else with `torch.load(weights_only=True)`, so a file holding a pickle
that would run code is refused before anything runs (the one class let through is
`argparse.Namespace`, the training options the DeiT / CaiT repositories keep beside the
weights).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping

import torch


def read_tensor_file(path: str | os.PathLike, owner: str = "backbone") -> object:
    """The object stored in a local weights file; errors name the file and what was expected."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{owner}: pretrained weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return dict(load_file(path, device="cpu"))
        except Exception as error:
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that carries code, or a corrupt file
        raise ValueError(
            f"{path}: refused or unreadable; only plain tensor checkpoints load "
            f"(torch.load with weights_only=True): {error}"
        ) from error


def check_state_fits(
    own: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    source: str,
    owner: str,
    may_miss: Callable[[str], bool] = lambda name: False,
    may_add: Callable[[str], bool] = lambda name: False,
) -> tuple[list[str], list[str]]:
    """(missing, unexpected) names of `state` against the model's `own` state dict.

    Raises ValueError naming `source` and `owner` when a name is missing (and not
    `may_miss`), unexpected (and not `may_add`), or has another shape.
    """
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    hard_missing = [k for k in missing if not may_miss(k)]
    hard_unexpected = [k for k in unexpected if not may_add(k)]
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if hard_missing or hard_unexpected or shapes:
        parts = []
        if hard_missing:
            parts.append(f"{len(hard_missing)} missing (e.g. {hard_missing[:5]})")
        if hard_unexpected:
            parts.append(f"{len(hard_unexpected)} unexpected (e.g. {hard_unexpected[:5]})")
        if shapes:
            parts.append("shape mismatches: " + "; ".join(shapes[:5]))
        raise ValueError(f"{source} does not fit {owner}: " + ", ".join(parts))
    return missing, unexpected
