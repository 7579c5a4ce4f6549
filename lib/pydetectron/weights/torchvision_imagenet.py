"""torchvision ImageNet ResNet / ResNeXt state dicts -> Detectron blob names.

torchvision names (`conv1`, `bn1`, `layer<i>.<j>.conv<k>` / `bn<k>`, `downsample.0/1`,
`fc`) follow one fixed scheme, Detectron's (`conv1_w`, `res_conv1_bn_*`,
`res<i+1>_<j>_branch2{a,b,c}_*`, `branch1`, `fc1000_*`) another; translating the file
lets the model's own Detectron mappings place every tensor, the res5 of a C4 box head
included. BatchNorm tensors keep their four parts (`<blob>_s`, `_b`, `_running_mean`,
`_running_var`): the loader copies them as they are into BatchNorm-style norms and
folds them into the affine form (with `TORCHVISION_BN_EPS`) for AffineChannel norms.
Detectron.pytorch's converted Caffe ResNets (`resnet50_caffe.pth`) use the same names.
"""

from __future__ import annotations

import re

import torch

# torch.nn.BatchNorm2d's default, used by every torchvision ResNet / ResNeXt.
TORCHVISION_BN_EPS = 1e-5
STAT_SUFFIXES = ("running_mean", "running_var")

_BN_PARTS = {"weight": "s", "bias": "b", "running_mean": "running_mean", "running_var": "running_var"}
_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(\w+)$")
_BRANCH2 = {"1": "a", "2": "b", "3": "c"}


def looks_like_torchvision_resnet(state_dict: dict) -> bool:
    """True for a torchvision classification ResNet/ResNeXt state dict (conv1, layer1.0...)."""
    return "conv1.weight" in state_dict and any(str(k).startswith("layer1.0.") for k in state_dict)


def _block_blob(stage: int, block: int, layer: str, tensor: str) -> str | None:
    prefix = f"res{stage + 1}_{block}_"
    if layer.startswith("conv") and tensor == "weight":
        return f"{prefix}branch2{_BRANCH2[layer[-1]]}_w"
    if layer.startswith("bn") and tensor in _BN_PARTS:
        return f"{prefix}branch2{_BRANCH2[layer[-1]]}_bn_{_BN_PARTS[tensor]}"
    if layer == "downsample.0" and tensor == "weight":
        return f"{prefix}branch1_w"
    if layer == "downsample.1" and tensor in _BN_PARTS:
        return f"{prefix}branch1_bn_{_BN_PARTS[tensor]}"
    return None


def torchvision_resnet_blob_name(name: str) -> str | None:
    """The Detectron blob for a torchvision ResNet tensor name; None for counters and unknown names."""
    if name == "conv1.weight":
        return "conv1_w"
    if name.startswith("bn1."):
        part = _BN_PARTS.get(name[len("bn1.") :])
        return f"res_conv1_bn_{part}" if part else None
    if name in ("fc.weight", "fc.bias"):
        return "fc1000_w" if name.endswith("weight") else "fc1000_b"
    match = _BLOCK.match(name)
    if match is None:
        return None
    stage, block, layer, tensor = match.groups()
    return _block_blob(int(stage), int(block), layer, tensor)


def torchvision_resnet_to_blobs(
    state_dict: dict,
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str], list[str]]:
    """(blobs, blob -> torchvision name, names dropped as counters, names not understood)."""
    blobs: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    counters: list[str] = []
    unknown: list[str] = []
    for name, value in state_dict.items():
        if str(name).endswith("num_batches_tracked"):
            counters.append(name)
            continue
        blob = torchvision_resnet_blob_name(str(name))
        if blob is None or not isinstance(value, torch.Tensor):
            unknown.append(name)
            continue
        blobs[blob] = value
        origin[blob] = str(name)
    return blobs, origin, counters, unknown
