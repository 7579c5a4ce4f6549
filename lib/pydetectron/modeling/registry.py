"""Registries that find bodies and heads by their Detectron names, and build them from a config.

One builder pattern holds across the model: a module built from the config has a
``from_cfg(cfg, ...)`` classmethod that reads its keys and calls the constructor with plain
arguments. A registry maps a config name to such a class plus the fixed arguments the name
stands for (a preset), and builds through ``from_cfg``:

    @BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_gn_head", use_gn=True)
    @BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_head", use_gn=False)
    class ConvFCHead(nn.Module):
        @classmethod
        def from_cfg(cls, cfg, dim_in, use_gn): ...

    head = BOX_HEADS.build(cfg.FAST_RCNN.ROI_BOX_HEAD, cfg, dim_in)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pydetectron.config import ConfigValueError
from pydetectron.utils.name_table import NameTable


class UnknownNameError(ConfigValueError, KeyError):
    """A config value names no registered body, head, branch or model type (the message lists
    the close names); a user error, so the tools report it in one line."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


def strip_detectron_add_prefix(name: str) -> str:
    """``FPN.add_fpn_ResNet50_conv5_body`` -> ``FPN.fpn_ResNet50_conv5_body``.

    Detectron configs name builder functions ``module.add_<name>``; Detectron.pytorch
    configs drop the ``add_``. Both spellings find the same entry.
    """
    module, dot, func = name.rpartition(".")
    if func.startswith("add_"):
        func = func[len("add_") :]
    return f"{module}{dot}{func}"


class RegistryEntry:
    """A registered class and the fixed ``from_cfg`` arguments its name stands for."""

    def __init__(self, name: str, cls: type, preset: Mapping[str, Any] | None = None) -> None:
        if not isinstance(cls, type) or not callable(getattr(cls, "from_cfg", None)):
            raise TypeError(f"{name!r}: a registry entry must be a class with a from_cfg classmethod, got {cls!r}")
        self.name = name
        self.cls = cls
        self.preset = MappingProxyType(dict(preset or {}))

    def build(self, cfg, *args: Any, **kwargs: Any) -> Any:
        """``cls.from_cfg(cfg, *args, **preset, **kwargs)``."""
        return self.cls.from_cfg(cfg, *args, **self.preset, **kwargs)

    def __repr__(self) -> str:
        preset = "".join(f", {key}={value!r}" for key, value in self.preset.items())
        return f"RegistryEntry({self.name!r}, {self.cls.__name__}{preset})"


class Registry(NameTable):
    """Config name -> `RegistryEntry`; `build(name, cfg, ...)` builds the named module."""

    def register(self, name: str, **preset: Any) -> Callable[[type], type]:
        """Class decorator: ``name`` builds the class with ``from_cfg(cfg, ..., **preset)``."""

        def add(cls: type) -> type:
            self.add(name, RegistryEntry(name, cls, preset))
            return cls

        return add

    def get(self, name: str) -> RegistryEntry:
        """The entry of ``name`` (a prefix resolver must return a `RegistryEntry`); when there is
        none, an `UnknownNameError` (a KeyError) lists the close names."""
        try:
            entry = super().get(name)
        except (KeyError, ValueError) as error:  # no entry, or a prefix resolver refused the name
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            raise UnknownNameError(message) from error
        if not isinstance(entry, RegistryEntry):
            raise TypeError(f"{self.what}: {name!r} resolved to {entry!r}, not a RegistryEntry")
        return entry

    def build(self, name: str, cfg, *args: Any, **kwargs: Any) -> Any:
        """The module registered as ``name``, built from ``cfg`` (and the entry's inputs ``args``)."""
        return self.get(name).build(cfg, *args, **kwargs)


# Conv bodies (backbone, or backbone + neck) keyed by MODEL.CONV_BODY; each entry's
# ``from_cfg(cfg)`` builds the body (see backbones/resnet.py, resnet_fpn.py, toolbox_body.py).
BODIES = Registry("MODEL.CONV_BODY", normalize=strip_detectron_add_prefix)

# Model types keyed by MODEL.TYPE; each entry's ``from_cfg(cfg, body)`` builds the model on a body.
MODEL_TYPES = Registry("MODEL.TYPE")
