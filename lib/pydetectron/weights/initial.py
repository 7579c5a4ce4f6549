"""The weights a training run starts from, as flags and config name them.

Order (the first that applies):
1. `--load_ckpt` (our checkpoint or any format `load_weights` reads) or `--load_detectron`
   (a Detectron `.pkl`), never both;
2. `MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS` with `RESNETS.IMAGENET_PRETRAINED_WEIGHTS`
   (relative paths start at ROOT_DIR), as in Detectron.pytorch; a TRAIN.WEIGHTS also
   set is then not loaded, and a warning says so;
3. `TRAIN.WEIGHTS` (a path, relative to the working folder, or a URL), as in Detectron.
Whatever is named must load: a missing file or a failed download is an error. Training
from random initialisation happens only when nothing is named.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from torch import nn

from .download import is_url
from .errors import WeightsError
from .loader import load_weights
from .report import LoadReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsSource:
    """Where initial weights come from: the flag or config key that named them, and the path or URL."""

    named_by: str
    location: str


def initial_weights(cfg, load_ckpt: str | None = None, load_detectron: str | None = None) -> list[WeightsSource]:
    """The weights to load before training (empty: train from random initialisation)."""
    if load_ckpt and load_detectron:
        raise WeightsError("give --load_ckpt or --load_detectron, not both")
    if load_ckpt:
        return [WeightsSource("--load_ckpt", str(load_ckpt))]
    if load_detectron:
        return [WeightsSource("--load_detectron", str(load_detectron))]
    train_weights = str(cfg.TRAIN.WEIGHTS or "")
    if cfg.MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS:
        location = str(cfg.RESNETS.IMAGENET_PRETRAINED_WEIGHTS or "")
        if not location:
            raise WeightsError(
                "MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS is True but RESNETS.IMAGENET_PRETRAINED_WEIGHTS is empty"
            )
        if not is_url(location):
            location = os.path.join(str(cfg.ROOT_DIR), os.path.expanduser(location))
        if train_weights:
            logger.warning(
                "TRAIN.WEIGHTS %s is not loaded: MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS selects "
                "RESNETS.IMAGENET_PRETRAINED_WEIGHTS %s",
                train_weights,
                location,
            )
        return [WeightsSource("RESNETS.IMAGENET_PRETRAINED_WEIGHTS", location)]
    if train_weights:
        return [WeightsSource("TRAIN.WEIGHTS", train_weights)]
    return []


def load_initial_weights(
    model: nn.Module, cfg, load_ckpt: str | None = None, load_detectron: str | None = None
) -> list[LoadReport]:
    """Load what `initial_weights` names into `model`; errors say which flag or key named the file."""
    sources = initial_weights(cfg, load_ckpt, load_detectron)
    if not sources:
        logger.info("No initial weights named (TRAIN.WEIGHTS is empty): training from random initialisation")
    reports = []
    for source in sources:
        logger.info("Initialising from %s %s", source.named_by, source.location)
        try:
            reports.append(load_weights(model, source.location, cfg))
        except WeightsError as error:
            raise type(error)(f"{source.named_by}: {error}") from None
    return reports
