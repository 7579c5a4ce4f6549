"""Match a Detectron blob dict to a model through the blob names its modules declare.

Rules, as Detectron's `initialize_gpu_from_weights_file` applies them:
- a model blob `_[xyz]_foo` that the file lacks loads from `foo` (heads sharing the
  initialisation of another, e.g. the mask head's `_[mask]_fcn1` from `fcn1`);
- `<blob>_momentum` (SGD state) and the blobs modules declare as orphans (ImageNet
  classifier, Caffe conv biases) are ignored, and reported as such.
Norms: Detectron's `_s` / `_b` blobs are an affine transform. A BatchNorm-style norm
takes them as weight / bias with identity statistics (mean 0, variance 1 - eps, so that
it computes exactly `x * s + b`); when the blob dict also carries BatchNorm statistics
(`<norm blob>_running_mean` / `_running_var`, from a torchvision file) they are copied
into BatchNorm-style norms and folded into the affine form for the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .detectron_names import DetectronNames, fold_batch_norm, has_running_stats, split_norm_blob
from .errors import WeightsError

MOMENTUM_SUFFIX = "_momentum"


@dataclass
class BlobMatch:
    """Our tensors to set (and which blob each came from) and how every blob was used."""

    assignments: dict[str, torch.Tensor] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    derived: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def shared_source_name(blob: str) -> str | None:
    """`_[mask]_fcn1_w` -> `fcn1_w` (Detectron's rule for blobs named `_[xyz]_foo`), else None."""
    cut = blob.find("]_")
    return blob[cut + 2 :] if cut >= 0 else None


def as_tensor(value, where: str, blob: str) -> torch.Tensor:
    """A blob (numpy array, numpy scalar or tensor) as a tensor; anything else is an error naming it."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise WeightsError(f"{where}: blob {blob} holds {array.dtype} data, not numbers")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array, copy=True, order="C")
    return torch.from_numpy(array)


class _Matcher:
    def __init__(self, model: nn.Module, blobs: dict, names: DetectronNames, where: str, stats_eps: float):
        self.model = model
        self.blobs = blobs
        self.names = names
        self.where = where
        self.stats_eps = stats_eps
        self.result = BlobMatch()
        self._norms_done: set[str] = set()

    def has(self, blob: str) -> bool:
        return self.blobs.get(blob) is not None

    def take(self, blob: str) -> torch.Tensor:
        self.result.used.add(blob)
        return as_tensor(self.blobs[blob], self.where, blob)

    def source_of(self, blob: str) -> str | None:
        if self.has(blob):
            return blob
        shared = shared_source_name(blob)
        return shared if shared is not None and self.has(shared) else None

    def assign(self, ours: str, value: torch.Tensor, source: str) -> None:
        self.result.assignments[ours] = value
        self.result.sources[ours] = source

    def run(self) -> BlobMatch:
        for ours, blob in self.names.blobs.items():
            source = self.source_of(blob)
            if source is None:
                self.result.missing.append(ours)
                continue
            module_path, _, tensor_name = ours.rpartition(".")
            module = self.model.get_submodule(module_path)
            norm = split_norm_blob(source) if tensor_name in ("weight", "bias") else None
            if norm is not None and self.has(norm[0] + "_running_mean") and self.has(norm[0] + "_running_var"):
                self.load_batch_norm(ours, module, module_path, tensor_name, norm[0], source)
            else:
                self.assign(ours, self.take(source), source)
                if norm is not None and has_running_stats(module):
                    self.identity_statistics(module, module_path)
        self.sort_leftovers()
        return self.result

    def load_batch_norm(self, ours: str, module: nn.Module, module_path: str, tensor_name: str, stem: str, source):
        """A norm blob that comes with BatchNorm statistics: copy them, or fold them into the affine form."""
        mean, var = self.take(stem + "_running_mean"), self.take(stem + "_running_var")
        if has_running_stats(module):
            self.assign(ours, self.take(source), source)
            if module_path not in self._norms_done:
                self._norms_done.add(module_path)
                self.assign(f"{module_path}.running_mean", mean, stem + "_running_mean")
                self.assign(f"{module_path}.running_var", var, stem + "_running_var")
            return
        if not (self.has(stem + "_s") and self.has(stem + "_b")):
            raise WeightsError(f"{self.where}: {stem}_s and {stem}_b are both needed to fold BatchNorm into {ours}")
        scale, shift = fold_batch_norm(self.take(stem + "_s"), self.take(stem + "_b"), mean, var, self.stats_eps)
        self.assign(ours, scale if tensor_name == "weight" else shift, source)

    def identity_statistics(self, module: nn.Module, module_path: str) -> None:
        """Running statistics that make a BatchNorm-style norm compute Detectron's `x * s + b`."""
        if module_path in self._norms_done:
            return
        self._norms_done.add(module_path)
        for name, value in (
            ("running_mean", torch.zeros_like(module.running_mean)),
            ("running_var", torch.full_like(module.running_var, 1.0 - float(module.eps))),
        ):
            self.result.assignments[f"{module_path}.{name}"] = value
            self.result.derived.append(f"{module_path}.{name}")

    def sort_leftovers(self) -> None:
        orphans = set(self.names.orphans)
        for blob, value in self.blobs.items():
            if blob in self.result.used:
                continue
            if value is None or blob.endswith(MOMENTUM_SUFFIX) or blob in orphans:
                self.result.ignored.append(blob)
            else:
                self.result.unused.append(blob)


def match_detectron_blobs(
    model: nn.Module, blobs: dict, names: DetectronNames, where: str, stats_eps: float = 1e-5
) -> BlobMatch:
    """Our tensors from a Detectron-style blob dict (see the module notes for the rules).

    `stats_eps` is the eps of the BatchNorm whose statistics a blob dict carries (used
    only when they are folded into an affine norm).
    """
    return _Matcher(model, blobs, names, where, stats_eps).run()
