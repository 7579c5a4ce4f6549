"""AttrDict: a dict with attribute access that can be frozen, the node type of the config tree."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

# Name of the instance attribute (kept out of the dict items) that holds the frozen flag.
_FROZEN = "_frozen"
# Dotted path of a node inside its tree, filled in when the tree is frozen (for messages).
_PATH = "_path"


class FrozenConfigError(AttributeError, TypeError):
    """Raised on any attempt to change a frozen AttrDict (attribute or item)."""


class AttrDict(dict):
    """A dict whose items are also attributes: ``d.TEST.NMS`` is ``d['TEST']['NMS']``.

    Nested plain dicts given to the constructor become AttrDicts. After ``immutable(True)``
    the node and every AttrDict below it refuse attribute and item assignment and deletion,
    so a config cannot drift while a program runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.__dict__[_FROZEN] = False
        self.__dict__[_PATH] = ""
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, _wrap(value))

    # -- attribute access ---------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self._full_key(name)}: no such key") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"{self._full_key(name)}: no such key") from None

    def __dir__(self) -> Iterable[str]:
        return [*super().__dir__(), *(k for k in self if isinstance(k, str))]

    # -- item access (all mutating paths check the frozen flag) ---------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_mutable(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._check_mutable(key)
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:
        self._check_mutable(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        self._check_mutable(None)
        return super().popitem()

    def clear(self) -> None:
        self._check_mutable(None)
        super().clear()

    def __ior__(self, other: Any) -> AttrDict:
        self.update(other)
        return self

    # -- freezing -------------------------------------------------------------------------
    def immutable(self, is_immutable: bool) -> None:
        """Freeze (True) or unfreeze (False) this node and every AttrDict below it."""
        self._set_frozen(bool(is_immutable), self.__dict__[_PATH])

    def is_immutable(self) -> bool:
        """True when this node refuses changes."""
        return self.__dict__[_FROZEN]

    def _set_frozen(self, frozen: bool, path: str) -> None:
        self.__dict__[_FROZEN] = frozen
        self.__dict__[_PATH] = path
        for key, value in self.items():
            if isinstance(value, AttrDict):
                value._set_frozen(frozen, self._full_key(key))

    def _full_key(self, key: Any) -> str:
        prefix = self.__dict__.get(_PATH, "")
        return f"{prefix}.{key}" if prefix else str(key)

    def _check_mutable(self, key: Any) -> None:
        if self.__dict__.get(_FROZEN, False):
            where = self._full_key(key) if key is not None else self.__dict__[_PATH] or "config"
            raise FrozenConfigError(
                f"{where}: cannot change a frozen config; "
                "call .immutable(False) first if the change is intended"
            )

    # -- copying and pickling ---------------------------------------------------------------
    def __copy__(self) -> AttrDict:
        duplicate = type(self)()
        dict.update(duplicate, self)
        duplicate.__dict__.update(self.__dict__)
        return duplicate

    def __deepcopy__(self, memo: dict[int, Any]) -> AttrDict:
        duplicate = type(self)()
        memo[id(self)] = duplicate
        for key, value in self.items():
            dict.__setitem__(duplicate, copy.deepcopy(key, memo), copy.deepcopy(value, memo))
        duplicate.__dict__.update(self.__dict__)
        return duplicate

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),), dict(self.__dict__))

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- export -------------------------------------------------------------------------------
    def to_dict(self) -> dict[Any, Any]:
        """Plain nested dicts and lists (tuples become lists), ready for YAML or JSON."""
        return {key: _to_plain(value) for key, value in self.items()}

    def dump(self, **yaml_kwargs: Any) -> str:
        """The tree as YAML text (keys in insertion order); merging it back gives the same tree."""
        options = {"default_flow_style": False, "sort_keys": False, **yaml_kwargs}
        return yaml.safe_dump(self.to_dict(), **options)


def _wrap(value: Any) -> Any:
    """Plain mappings become AttrDicts (recursively); AttrDicts and other values pass through."""
    if isinstance(value, Mapping) and not isinstance(value, AttrDict):
        return AttrDict(value)
    return value


def _to_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(item) for item in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return value
