"""A `__repr__` that lists an object's settings, for the plain (non-Module) model parts."""

from __future__ import annotations


class SettingsRepr:
    """`ClassName(a=1, b='x')` from the instance attributes set in `__init__`."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"
