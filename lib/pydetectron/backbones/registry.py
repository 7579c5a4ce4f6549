"""Name -> constructor table of every backbone (`pydetectron.backbones.<name>`)."""

from __future__ import annotations

from collections.abc import Callable

from ..utils.name_table import NameTable

# Each entry is a constructor `fn(pretrained: str | None = None, **kwargs) -> Backbone`.
BACKBONES = NameTable("backbone")


def build_backbone(name: str, pretrained: str | None = None, **kwargs):
    """The backbone registered as `name`, with weights from the local file `pretrained`."""
    return BACKBONES.get(name)(pretrained=pretrained, **kwargs)


def register_backbone(name: str | None = None) -> Callable:
    """Decorator registering a constructor under `name` (default: its function name)."""

    def add(fn: Callable) -> Callable:
        BACKBONES.register(name or fn.__name__)(fn)
        return fn

    return add
