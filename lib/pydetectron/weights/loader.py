"""`load_weights(model, path_or_state_dict)`: detect the format, convert, load, report."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from .torchvision_detection import convert_torchvision_detection, looks_like_torchvision_detection

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a load did: the detected format, our tensors left untouched, file tensors unused."""

    source_format: str
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _read(path_or_state_dict) -> tuple[dict, str]:
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict, "<state dict>"
    path = os.fspath(path_or_state_dict)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith(".pkl"):
        raise ValueError(f"{path}: Detectron/Caffe .pkl weights are not supported by this version")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling refused or corrupt file
        raise ValueError(f"{path}: not a readable PyTorch weights file ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict, got {type(data).__name__}")
    return data, path


def load_weights(model: nn.Module, path_or_state_dict, cfg=None) -> LoadReport:
    """Load a torchvision detection state dict, our checkpoint ({'model': ...}) or our state dict.

    Tensors whose shapes differ from the model's raise a ValueError naming them.
    """
    data, where = _read(path_or_state_dict)
    if "model" in data and isinstance(data["model"], dict):
        state, fmt = data["model"], "pydetectron checkpoint"
    elif looks_like_torchvision_detection(data):
        state, fmt = data, "torchvision detection"
    else:
        state, fmt = data, "pydetectron state dict"
    own = model.state_dict()
    if fmt == "torchvision detection":
        state, missing, unused = convert_torchvision_detection(state, model)
    else:
        missing = sorted(k for k in own if k not in state)
        unused = sorted(k for k in state if k not in own)
        state = {k: v for k, v in state.items() if k in own}
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if v.shape != own[k].shape
    ]
    if bad:
        raise ValueError(f"{where}: tensor shapes do not match the model: " + "; ".join(bad[:10]))
    model.load_state_dict(state, strict=False)
    report = LoadReport(fmt, missing, unused)
    if missing:
        logger.warning("%s (%s): %d model tensors not in the file, e.g. %s", where, fmt, len(missing), missing[:5])
    if unused:
        logger.info("%s (%s): %d file tensors unused, e.g. %s", where, fmt, len(unused), unused[:5])
    return report
