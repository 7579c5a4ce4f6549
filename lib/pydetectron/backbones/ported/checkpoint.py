"""Safe reading of published weights and the loading base class of the ported backbones.

`read_weights_file(path)` reads a `.safetensors` file with the safetensors package and
anything else (`.pth`, `.pt`, `.bin`, `.ckpt`) with `torch.load(weights_only=True)`: a file
holding a pickle that would run code is refused before anything runs (the one class let
through is `argparse.Namespace`, the training options the DeiT repository saves beside the
weights). Checkpoint wrappers (`{'model': ...}`, `{'state_dict': ...}`, `{'model_ema': ...}`,
a `module.` prefix from DataParallel) are unwrapped.

`PortedBackbone.load_pretrained(path)` then converts the names of the original repositories
to this package's (timm's) names, resizes position encodings for the configured input size,
and loads strictly: a missing or unexpected entry is an error unless the family declares it
optional (new detection layers, kept at their initial values) or ignorable (classifier
heads). The returned `LoadReport` lists what was resized, ignored and left initialised.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..base import Backbone

logger = logging.getLogger(__name__)

CHECKPOINT_WRAPPERS = ("model", "state_dict", "model_ema", "module")


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a local `.safetensors` / `.pth` file, read without running any code from it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return dict(load_file(path, device="cpu"))
        except Exception as error:
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        # training checkpoints of the DeiT / CaiT repositories keep their argparse options beside
        # the weights; a Namespace only holds attributes, so it is the one class let through
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that carries code, or a corrupt file
        raise ValueError(
            f"{path}: refused or unreadable; only plain tensor checkpoints load "
            f"(torch.load with weights_only=True): {error}"
        ) from error
    return unwrap_checkpoint(data, path)


def unwrap_checkpoint(data: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (`{'model': ...}` etc.), `module.` prefixes removed."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a state dict, got {type(data).__name__}")
    for _ in range(2):  # e.g. {'model': {'module.x': ...}} or {'state_dict': {...}}
        for key in CHECKPOINT_WRAPPERS:
            inner = data.get(key)
            if isinstance(inner, Mapping) and inner and not isinstance(inner, torch.Tensor):
                data = inner
                break
    if data and all(isinstance(k, str) and k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    bad = [k for k, v in data.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{source}: entries that are not tensors: {bad[:5]}")
    if not data:
        raise ValueError(f"{source}: the state dict is empty")
    return dict(data)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str, report: LoadReport) -> dict[str, torch.Tensor]:
    """Keep the entries under `prefix` (renamed without it) when there are any; report the others."""
    if not any(k.startswith(prefix) for k in state):
        return state
    kept = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    report.ignored.extend(sorted(k for k in state if not k.startswith(prefix)))
    return kept


@dataclass
class LoadReport:
    """What `load_pretrained` / `load_state` did with a checkpoint."""

    source: str
    loaded: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    initialized: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded"]
        if self.resized:
            parts.append(f"resized: {self.resized}")
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored (e.g. {self.ignored[:4]})")
        if self.initialized:
            parts.append(f"{len(self.initialized)} kept at their initial values (e.g. {self.initialized[:4]})")
        return f"{self.source}: " + "; ".join(parts)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(re.search(p, name) for p in patterns)


class PortedBackbone(Backbone):
    """Backbone whose weights come from published checkpoints (timm's or the original repositories' names).

    Subclasses set `optional_keys` (regexes of own entries a checkpoint may lack: new
    detection layers) and `ignored_keys` (regexes of checkpoint entries with no use here:
    classifier heads), implement `convert_state_dict`, and give `lr_layer_id(name)` /
    `num_lr_layers` for layer-wise LR decay.
    """

    optional_keys: tuple[str, ...] = ()
    ignored_keys: tuple[str, ...] = ()
    num_lr_layers: int = 1

    def convert_state_dict(self, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        """Original-layout names -> own names, and resizing for this model's input size."""
        return state

    def lr_layer_id(self, name: str) -> int:
        """Depth of parameter `name` (0 = embeddings ... `num_lr_layers` = after the last block)."""
        return self.num_lr_layers

    def no_weight_decay(self) -> set[str]:
        """Names of parameters kept out of weight decay besides biases and 1-D parameters."""
        return set()

    def load_pretrained(self, path: str | os.PathLike) -> LoadReport:
        """Load a local `.safetensors` / `.pth` file (timm's or the original repository's names)."""
        return self.load_state(read_weights_file(path), source=os.fspath(path))

    def load_state(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> LoadReport:
        """Load an in-memory state dict the way `load_pretrained` loads a file."""
        report = LoadReport(source)
        state = self.convert_state_dict(unwrap_checkpoint(state, source), report)
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        hard_missing = [k for k in missing if not _matches(k, self.optional_keys)]
        hard_unexpected = [k for k in unexpected if not _matches(k, self.ignored_keys)]
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
            raise ValueError(f"{source} does not fit {type(self).__name__}: " + ", ".join(parts))
        usable = {k: v for k, v in state.items() if k in own}
        self.load_state_dict(usable, strict=False)
        report.loaded = sorted(usable)
        report.ignored.extend(sorted(unexpected))
        report.initialized = sorted(missing)
        logger.info(report.summary())
        return report
