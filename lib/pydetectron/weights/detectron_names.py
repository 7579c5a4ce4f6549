"""The Detectron blob names of a model, gathered from the modules that declare them.

A module that owns weights declares `detectron_weight_mapping() -> (mapping, orphans)`
(see `pydetectron.nn.weight_mapping`). Walking `named_modules()` in order, the first
module on each path that has the method covers its whole subtree; nothing here knows a
module's names or attributes, so any body or head that declares its blobs loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class DetectronNames:
    """What a model declares: our state-dict name -> blob, blobs knowingly unused, and who said so."""

    blobs: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)

    def by_blob(self) -> dict[str, list[str]]:
        """Blob -> our state-dict names that take it (several when a blob is shared)."""
        table: dict[str, list[str]] = {}
        for ours, blob in self.blobs.items():
            table.setdefault(blob, []).append(ours)
        return table


def _declared(module: nn.Module):
    method = getattr(type(module), "detectron_weight_mapping", None)
    if method is None:
        return None
    value = module.detectron_weight_mapping
    return value() if callable(value) else value


def detectron_names(model: nn.Module) -> DetectronNames:
    """Every blob name `model`'s modules declare, with names relative to `model`.

    Raises ValueError when a module declares a tensor it does not have (a bug in that
    module's mapping, named in the message).
    """
    names = DetectronNames()
    state = model.state_dict(keep_vars=True)
    covered: str | None = None
    for path, module in model.named_modules():
        if covered is not None and (covered == "" or path == covered or path.startswith(covered + ".")):
            continue
        declared = _declared(module)
        if declared is None:
            continue
        covered = path
        mapping, orphans = declared
        prefix = f"{path}." if path else ""
        owner = path or type(model).__name__
        unknown = [name for name in mapping if prefix + name not in state]
        if unknown:
            raise ValueError(
                f"{owner} ({type(module).__name__}).detectron_weight_mapping names tensors it does not have: "
                f"{unknown[:5]}"
            )
        for name, blob in mapping.items():
            names.blobs[prefix + name] = blob
            names.owners[prefix + name] = owner
        names.orphans.extend(o for o in orphans if o not in names.orphans)
    return names


def has_running_stats(module: nn.Module) -> bool:
    """True for BatchNorm-style norms (BatchNorm2d, FrozenBatchNorm2d) that keep running statistics."""
    return (
        isinstance(getattr(module, "running_mean", None), torch.Tensor)
        and isinstance(getattr(module, "running_var", None), torch.Tensor)
        and hasattr(module, "eps")
    )


def fold_batch_norm(
    weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm statistics folded into Detectron's affine form: (scale, shift), computed in float64."""
    scale = weight.double() / torch.sqrt(var.double() + eps)
    shift = bias.double() - mean.double() * scale
    return scale.to(weight.dtype), shift.to(bias.dtype)


def split_norm_blob(blob: str) -> tuple[str, str] | None:
    """`res2_0_branch2a_bn_s` -> ('res2_0_branch2a_bn', 's'): Detectron's scale/shift blob of a norm."""
    stem, _, suffix = blob.rpartition("_")
    return (stem, suffix) if stem and suffix in ("s", "b") else None


def model_to_detectron_blobs(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our weights under Detectron's blob names (the inverse of loading a Detectron file).

    Norms with running statistics are written in Detectron's affine form (statistics
    folded into `_s` / `_b`); a blob shared by several of our tensors is written once.
    """
    names = detectron_names(model)
    state = model.state_dict()
    blobs: dict[str, torch.Tensor] = {}
    for ours, blob in names.blobs.items():
        if blob in blobs:
            continue
        module_path, _, tensor_name = ours.rpartition(".")
        module = model.get_submodule(module_path)
        value = state[ours].detach().cpu()
        if has_running_stats(module) and tensor_name in ("weight", "bias"):
            prefix = f"{module_path}." if module_path else ""
            scale, shift = fold_batch_norm(
                state[prefix + "weight"].cpu(),
                state[prefix + "bias"].cpu(),
                state[prefix + "running_mean"].cpu(),
                state[prefix + "running_var"].cpu(),
                float(module.eps),
            )
            value = scale if tensor_name == "weight" else shift
        blobs[blob] = value.float().clone()
    return blobs
