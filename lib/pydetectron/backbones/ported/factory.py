"""One constructor path for every registered ported backbone: defaults, overrides, local weights."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..registry import register_backbone
from .checkpoint import PortedBackbone


def build_ported(
    cls: type[PortedBackbone], defaults: dict[str, Any], pretrained: str | os.PathLike | None, overrides: dict
) -> PortedBackbone:
    """`cls(**defaults | overrides)`, then weights from the local file `pretrained` if given."""
    model = cls(**{**defaults, **overrides})
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model


PORTED_NAMES: list[str] = []  # every name registered here, in registration order


def register_variants(cls: type[PortedBackbone], variants: dict[str, dict[str, Any]], family: str) -> None:
    """Register `name(pretrained=None, **kwargs)` for each name -> constructor defaults."""
    for name, defaults in variants.items():
        register_backbone(name)(_constructor(cls, name, defaults, family))
        PORTED_NAMES.append(name)


def _constructor(cls: type[PortedBackbone], name: str, defaults: dict[str, Any], family: str) -> Callable:
    def constructor(pretrained: str | os.PathLike | None = None, **kwargs: Any) -> PortedBackbone:
        return build_ported(cls, defaults, pretrained, kwargs)

    settings = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = (
        f"{family} `{name}` ({cls.__name__}: {settings}).\n\n"
        "`pretrained`: a local .safetensors / .pth file (timm's or the original repository's names); "
        "keyword arguments override the defaults (e.g. img_size, drop_path_rate)."
    )
    constructor.defaults = dict(defaults)
    return constructor
