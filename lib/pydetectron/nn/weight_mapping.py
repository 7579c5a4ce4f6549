"""Helpers for the Detectron blob-name mappings that modules own.

A module's ``detectron_weight_mapping()`` returns ``(mapping, orphans)``: ``mapping``
takes each of the module's state-dict names that has a Detectron blob (relative to the
module) to that blob's name; ``orphans`` lists blobs of Detectron/ImageNet files that the
module knowingly leaves unused (e.g. conv biases of Caffe ImageNet models, fc1000).

A module with a no-argument ``detectron_weight_mapping()`` covers its whole subtree, so
a loader walking ``named_modules()`` uses the first such module on each path and skips
its descendants. Building blocks whose blob names depend on their position take the
name prefix as an argument instead (``detectron_blob_mapping(prefix)``).
"""

from torch import nn

WeightMapping = tuple[dict[str, str], list[str]]


def add_prefix(mapping: dict[str, str], prefix: str) -> dict[str, str]:
    """Prefix every module-side name of ``mapping`` with ``prefix.``."""
    return {f"{prefix}.{name}": blob for name, blob in mapping.items()}


def norm_mapping(norm_name: str, norm: nn.Module, blob_prefix: str) -> dict[str, str]:
    """Map a norm's scale/bias (``weight``/``bias``) to ``<blob_prefix>_s`` / ``_b``.

    Running statistics of BatchNorm-style layers have no Detectron blob and stay out.
    """
    names = dict(norm.named_parameters(recurse=False)) | dict(norm.named_buffers(recurse=False))
    mapping = {}
    if "weight" in names:
        mapping[f"{norm_name}.weight"] = blob_prefix + "_s"
    if "bias" in names:
        mapping[f"{norm_name}.bias"] = blob_prefix + "_b"
    return mapping


def conv_mapping(conv_name: str, conv: nn.Conv2d, blob_prefix: str) -> dict[str, str]:
    """Map a conv's ``weight`` (and ``bias`` if it has one) to ``<blob_prefix>_w`` / ``_b``."""
    mapping = {f"{conv_name}.weight": blob_prefix + "_w"}
    if conv.bias is not None:
        mapping[f"{conv_name}.bias"] = blob_prefix + "_b"
    return mapping


def prefix_both(mapping: dict[str, str], ours: str, theirs: str) -> dict[str, str]:
    """Prefix the module-side names with `ours.` and the file-side names with `theirs.`
    (for name tables such as torchvision's, whose layout nests like ours)."""
    return {f"{ours}.{name}": f"{theirs}.{other}" for name, other in mapping.items()}


def submodule_mappings(parts: dict[str, nn.Module | None]) -> WeightMapping:
    """Detectron mappings of named submodules (None skipped), each under its name, with their orphans."""
    mapping: dict[str, str] = {}
    orphans: list[str] = []
    for name, module in parts.items():
        if module is not None:
            part, part_orphans = module.detectron_weight_mapping()
            mapping |= add_prefix(part, name)
            orphans += part_orphans
    return mapping, orphans


def submodule_torchvision_mappings(parts: dict[str, nn.Module | None]) -> dict[str, str]:
    """torchvision name tables of named submodules (None skipped), each under its name."""
    mapping: dict[str, str] = {}
    for name, module in parts.items():
        if module is not None:
            mapping |= add_prefix(module.torchvision_weight_mapping(), name)
    return mapping
