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

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..base import Backbone
from ..state_dicts import check_state_fits, read_tensor_file

logger = logging.getLogger(__name__)

CHECKPOINT_WRAPPERS = ("model", "state_dict", "model_ema", "module")


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a local `.safetensors` / `.pth` file, read without running any code from it."""
    path = os.fspath(path)
    return unwrap_checkpoint(read_tensor_file(path, owner="ported backbone"), path)


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
        # a tools/train_classifier.py checkpoint: the backbone under `backbone.`, its `head.` ignored
        state = strip_prefix(unwrap_checkpoint(state, source), "backbone.", report)
        state = self.convert_state_dict(state, report)
        own = self.state_dict()
        missing, unexpected = check_state_fits(
            own,
            state,
            source,
            type(self).__name__,
            may_miss=lambda name: _matches(name, self.optional_keys),
            may_add=lambda name: _matches(name, self.ignored_keys),
        )
        usable = {k: v for k, v in state.items() if k in own}
        self.load_state_dict(usable, strict=False)
        report.loaded = sorted(usable)
        report.ignored.extend(sorted(unexpected))
        report.initialized = sorted(missing)
        logger.info(report.summary())
        return report
