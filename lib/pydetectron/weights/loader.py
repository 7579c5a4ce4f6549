"""`load_weights(model, path_or_state_dict)`: detect the format, convert, load, report.

Formats: Detectron `.pkl` (end-to-end models and Caffe ImageNet bodies, matched through
the blob names the model's modules declare), torchvision ImageNet ResNet/ResNeXt state
dicts (translated to blob names), torchvision detection state dicts, our checkpoints
and state dicts, and tools/train_classifier.py checkpoints (their backbone goes into the
model's `pydetectron.backbones` backbone, see `classifier.py`). Paths may be URLs (see
`download.resolve_weights`). Tensors whose shapes differ from the model's (a classifier
for another number of classes) are skipped and listed; a load that sets no tensor at all is an error.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from torch import nn

from .classifier import load_classifier_backbone, looks_like_classifier_checkpoint
from .detectron_load import BlobMatch, match_detectron_blobs
from .detectron_names import detectron_names
from .download import resolve_weights
from .errors import WeightsError
from .files import read_weights_file
from .report import LoadReport
from .torchvision_detection import convert_torchvision_detection, looks_like_torchvision_detection
from .torchvision_imagenet import TORCHVISION_BN_EPS, looks_like_torchvision_resnet, torchvision_resnet_to_blobs

logger = logging.getLogger(__name__)

DETECTRON_PKL = "Detectron .pkl"
IMAGENET_PKL = "Caffe ImageNet .pkl"
DETECTRON_BLOBS = "Detectron blobs"
TORCHVISION_IMAGENET = "torchvision ImageNet"
TORCHVISION_DETECTION = "torchvision detection"
CHECKPOINT = "pydetectron checkpoint"
STATE_DICT = "pydetectron state dict"

# Blobs only an ImageNet classifier file has (Caffe ResNets: fc1000; Detectron's GN models: pred).
_CLASSIFIER_BLOBS = ("fc1000_w", "pred_w")
_COUNTER = "num_batches_tracked"


def _read(path_or_state_dict) -> tuple[dict, str, bool]:
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict, "<state dict>", False
    if not isinstance(path_or_state_dict, str | os.PathLike):
        raise WeightsError(f"weights must be a path, a URL or a state dict, got {type(path_or_state_dict).__name__}")
    path = resolve_weights(path_or_state_dict)
    data, is_pickle = read_weights_file(path)
    return data, path, is_pickle


def _is_blob_value(value) -> bool:
    return value is None or isinstance(value, np.ndarray | np.generic | torch.Tensor)


def _looks_like_blobs(data: dict) -> bool:
    """A Detectron blob dict: string keys without dots, array values (a 'cfg' text aside)."""
    tensors = [k for k, v in data.items() if isinstance(v, np.ndarray | torch.Tensor)]
    return bool(tensors) and all(isinstance(k, str) and "." not in k for k in tensors)


def _detectron_blobs(data: dict, where: str) -> tuple[dict, str | None]:
    """(blob dict, stored config text) of a Detectron file: `{'blobs': ..., 'cfg': ...}` or bare blobs."""
    if isinstance(data.get("blobs"), dict):
        blobs, cfg_text = data["blobs"], data.get("cfg")
    else:
        cfg_text = data.get("cfg") if isinstance(data.get("cfg"), str) else None
        blobs = {k: v for k, v in data.items() if not (k == "cfg" and isinstance(v, str))}
    if isinstance(cfg_text, bytes):
        cfg_text = cfg_text.decode("latin1")
    bad = [k for k, v in blobs.items() if not isinstance(k, str) or not _is_blob_value(v)]
    if bad:
        raise WeightsError(f"{where}: entries that are not arrays in the blob dict: {bad[:5]}")
    return blobs, cfg_text if isinstance(cfg_text, str) else None


def _is_imagenet_file(blobs: dict, cfg_text: str | None) -> bool:
    return cfg_text is None and "cls_score_w" not in blobs and any(b in blobs for b in _CLASSIFIER_BLOBS)


def _apply(model: nn.Module, assignments: dict[str, torch.Tensor], report: LoadReport) -> None:
    """Copy the tensors whose shapes match into `model`; list the others in `report.skipped`."""
    own = model.state_dict()
    fitting = {}
    for name, value in assignments.items():
        if tuple(value.shape) != tuple(own[name].shape):
            report.skipped[name] = (tuple(value.shape), tuple(own[name].shape))
        else:
            fitting[name] = value
    derived = set(report.derived)
    if not any(name not in derived for name in fitting):
        file_names = report.unused[:5] or list(assignments)[:5]
        raise WeightsError(
            f"{report.source} ({report.source_format}): no tensor of the file fits the model "
            f"(file: e.g. {file_names}; model: e.g. {list(own)[:5]}"
            + (f"; {len(report.skipped)} differ in shape" if report.skipped else "")
            + ")"
        )
    with torch.no_grad():
        result = model.load_state_dict(fitting, strict=False)
    if result.unexpected_keys:  # cannot happen: every name comes from the model's own state dict
        raise WeightsError(f"{report.source}: unexpected tensors {result.unexpected_keys[:5]}")
    report.loaded = sorted(name for name in fitting if name not in derived)
    report.derived = sorted(name for name in derived if name in fitting)


def _own_names(model: nn.Module) -> list[str]:
    return [name for name in model.state_dict() if not name.endswith(_COUNTER)]


def _load_blobs(model, blobs, report: LoadReport, stats_eps: float = TORCHVISION_BN_EPS) -> BlobMatch:
    match = match_detectron_blobs(model, blobs, detectron_names(model), report.source, stats_eps)
    report.derived = list(match.derived)
    report.unused = sorted(match.unused)
    report.ignored = sorted(set(report.ignored) | set(match.ignored))
    _apply(model, match.assignments, report)
    assigned = set(match.assignments)
    report.missing = [name for name in _own_names(model) if name not in assigned]
    return match


def _stride_note(model: nn.Module, match: BlobMatch) -> str | None:
    """torchvision ResNets stride on the 3x3 conv; warn when the body strides the first 1x1."""
    for ours, blob in match.sources.items():
        if blob.endswith("_branch2a_w"):
            conv = model.get_submodule(ours.rpartition(".")[0])
            if tuple(getattr(conv, "stride", (1, 1))) != (1, 1):
                return (
                    "this body strides its first 1x1 conv (RESNETS.STRIDE_1X1: True, MSRA/Caffe models); "
                    "torchvision's own ResNets stride the 3x3 conv (RESNETS.STRIDE_1X1: False)"
                )
    return None


def _bbox_reg_note(cfg, cfg_text: str | None) -> str | None:
    """Detectron forces BBOX_REG_WEIGHTS (1, 1, 1, 1) for files trained before that key existed."""
    if cfg is None or cfg_text is None or "BBOX_REG_WEIGHTS" in cfg_text:
        return None
    weights = tuple(float(w) for w in cfg.MODEL.BBOX_REG_WEIGHTS)
    if weights == (1.0, 1.0, 1.0, 1.0):
        return None
    return (
        "the file's config predates MODEL.BBOX_REG_WEIGHTS; Detectron runs such models with "
        f"MODEL.BBOX_REG_WEIGHTS (1., 1., 1., 1.), this config has {weights}"
    )


def _load_state_dict(model: nn.Module, state: dict, report: LoadReport) -> None:
    own = set(model.state_dict())
    if report.source_format == TORCHVISION_DETECTION:
        state, missing, unused = convert_torchvision_detection(state, model)
    else:
        missing = [name for name in _own_names(model) if name not in state]
        unused = sorted(k for k in state if k not in own)
        state = {k: v for k, v in state.items() if k in own}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{report.source}: entries that are not tensors: {bad[:5]}")
    report.unused = list(unused)
    _apply(model, state, report)
    report.missing = list(missing)


def load_weights(model: nn.Module, path_or_state_dict, cfg=None) -> LoadReport:
    """Load weights of any supported format into `model`; log and return a `LoadReport`.

    `path_or_state_dict`: a file path, a URL (cached, see `resolve_weights`) or a dict
    already in memory. `cfg` (optional) only adds notes about likely mismatches.
    Raises WeightsError (one line, naming the file) for unreadable or unsafe files and
    when no tensor fits; WeightsNotFoundError for a missing file.
    """
    data, where, is_pickle = _read(path_or_state_dict)
    if is_pickle or _looks_like_blobs(data) or isinstance(data.get("blobs"), dict):
        blobs, cfg_text = _detectron_blobs(data, where)
        if not is_pickle:
            fmt = DETECTRON_BLOBS
        else:
            fmt = IMAGENET_PKL if _is_imagenet_file(blobs, cfg_text) else DETECTRON_PKL
        report = LoadReport(fmt, where, cfg_text=cfg_text, body_only=fmt == IMAGENET_PKL)
        _load_blobs(model, blobs, report)
        note = _bbox_reg_note(cfg, cfg_text)
        if note:
            report.notes.append(note)
    elif looks_like_classifier_checkpoint(data):
        report = load_classifier_backbone(model, data, where)
    elif "model" in data and isinstance(data["model"], dict):
        report = LoadReport(CHECKPOINT, where)
        _load_state_dict(model, data["model"], report)
    elif looks_like_torchvision_detection(data):
        report = LoadReport(TORCHVISION_DETECTION, where)
        _load_state_dict(model, data, report)
    elif looks_like_torchvision_resnet(data):
        blobs, origin, counters, unknown = torchvision_resnet_to_blobs(data)
        report = LoadReport(TORCHVISION_IMAGENET, where, body_only=True)
        match = _load_blobs(model, blobs, report)
        report.unused = sorted([origin[b] for b in report.unused] + [str(k) for k in unknown])
        report.ignored = sorted([origin[b] for b in report.ignored] + list(counters))
        note = _stride_note(model, match)
        if note:
            report.notes.append(note)
    else:
        report = LoadReport(STATE_DICT, where)
        _load_state_dict(model, data, report)
    report.log(logger)
    return report
