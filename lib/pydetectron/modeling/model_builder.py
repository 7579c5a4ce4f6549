"""`build_model(cfg)`: the model a Detectron config describes.

MODEL.CONV_BODY names the body in `BODIES`; MODEL.TYPE names the model class in
`MODEL_TYPES` (RETINANET.RETINANET_ON, as in Detectron, also picks 'retinanet'), whose
`from_cfg(cfg, body)` builds the rest: `GeneralizedRCNN` (RPN + RoI branches) or `RetinaNet`.
"""

from __future__ import annotations

from torch import nn

from pydetectron.config import ConfigValueError

from . import generalized_rcnn, retinanet  # noqa: F401  (importing registers the model types)
from .registry import BODIES, MODEL_TYPES


def model_type(cfg) -> str:
    """MODEL.TYPE, or 'retinanet' with RETINANET.RETINANET_ON (`RetinaNet.from_cfg` rejects
    another explicit MODEL.TYPE)."""
    return "retinanet" if cfg.RETINANET.RETINANET_ON else str(cfg.MODEL.TYPE)


def build_model(cfg) -> nn.Module:
    """Build the model of `cfg`: its body, then MODEL.TYPE's model on it. TRAIN.FREEZE_CONV_BODY
    stops every gradient into the body (FPN included), as Detectron does.

    A ValueError of a `from_cfg` (settings that do not fit together) comes out as a
    `ConfigValueError`, which the tools report in one line.
    """
    name = model_type(cfg)
    if name not in MODEL_TYPES:
        raise ConfigValueError(f"MODEL.TYPE {name!r} is not supported; expected one of {list(MODEL_TYPES)}")
    try:
        body = BODIES.build(cfg.MODEL.CONV_BODY, cfg)
        if cfg.TRAIN.FREEZE_CONV_BODY:
            body.requires_grad_(False)
        return MODEL_TYPES.build(name, cfg, body)
    except ConfigValueError:
        raise
    except ValueError as error:
        raise ConfigValueError(f"the config describes a model that cannot be built: {error}") from error


__all__ = ["build_model", "model_type"]
