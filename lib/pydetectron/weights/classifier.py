"""Classifier checkpoints of tools/train_classifier.py as initial weights of a detection body.

Such a checkpoint (`format: pydetectron.classifier`) holds a backbone under `backbone.` and a
linear `head.`; `load_classifier_backbone` puts the backbone part into the one
`pydetectron.backbones` backbone inside the model (a `toolbox.<backbone>+<neck>` body), through
that backbone's own strict loader, and leaves the head out. The detection layers keep their
initialisation.
"""

from __future__ import annotations

from torch import nn

from ..backbones import Backbone
from ..classification.engine import CHECKPOINT_FORMAT
from .errors import WeightsError
from .report import LoadReport

CLASSIFIER = "pydetectron classifier checkpoint"
BACKBONE_PREFIX = "backbone."


def looks_like_classifier_checkpoint(data: dict) -> bool:
    """A tools/train_classifier.py checkpoint: `format` says so and the tensors are under 'model'."""
    return data.get("format") == CHECKPOINT_FORMAT and isinstance(data.get("model"), dict)


def find_backbone(model: nn.Module) -> tuple[str, Backbone]:
    """(state-dict prefix, module) of the one outermost `Backbone` inside `model`."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, Backbone)]
    outermost = [(n, m) for n, m in found if not any(n.startswith(o + ".") for o, _ in found if o != n)]
    if len(outermost) != 1:
        what = "none" if not outermost else f"{len(outermost)}: {[n for n, _ in outermost]}"
        raise WeightsError(
            "a classifier checkpoint initialises the model's pydetectron.backbones backbone (a "
            f"toolbox.<backbone>+<neck> MODEL.CONV_BODY), but the model has {what}"
        )
    name, module = outermost[0]
    return (f"{name}." if name else ""), module


def load_classifier_backbone(model: nn.Module, data: dict, where: str) -> LoadReport:
    """Load the `backbone.` tensors of a classifier checkpoint strictly into the model's backbone."""
    prefix, backbone = find_backbone(model)
    tensors = data["model"]
    state = {k[len(BACKBONE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    if not state:
        raise WeightsError(f"{where}: the classifier checkpoint has no '{BACKBONE_PREFIX}' tensors")
    name = data.get("backbone")
    try:
        backbone.load_state(state, source=f"{where} (backbone {name!r})")
    except ValueError as error:
        raise WeightsError(str(error).replace("\n", " ")) from None
    report = LoadReport(CLASSIFIER, where, body_only=True)
    own = set(backbone.state_dict())
    report.loaded = sorted(prefix + k for k in state if k in own)
    report.ignored = sorted(k for k in tensors if not k.startswith(BACKBONE_PREFIX))
    loaded = set(report.loaded)
    report.missing = [k for k in model.state_dict() if k not in loaded and not k.endswith("num_batches_tracked")]
    return report
