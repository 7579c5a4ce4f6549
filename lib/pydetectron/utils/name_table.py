"""A name -> object table filled with a decorator and read with a clear error."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any


class NameTable:
    """Entries found by name; an unknown name raises a KeyError listing the close ones.

    ``what`` says what the entries are (e.g. the config key they come from) and is used in
    error messages. ``normalize`` maps a looked-up name to its canonical key.
    """

    def __init__(self, what: str, normalize: Callable[[str], str] | None = None):
        self.what = what
        self._normalize = normalize or (lambda name: name)
        self._entries: dict[str, Any] = {}
        # prefix -> resolver(name) for whole families of names (e.g. 'toolbox.<backbone>+<neck>').
        self._prefix_resolvers: dict[str, Callable[[str], Any]] = {}

    def add(self, name: str, entry: Any) -> None:
        """Store ``entry`` under ``name``; names are unique."""
        key = self._normalize(name)
        if key in self._entries:
            raise KeyError(f"{self.what}: {key!r} is registered twice")
        self._entries[key] = entry

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator adding the decorated object under ``name``."""

        def add(obj: Any) -> Any:
            self.add(name, obj)
            return obj

        return add

    def register_prefix(self, prefix: str, resolver: Callable[[str], Any]) -> None:
        """Resolve every unregistered name starting with ``prefix`` through ``resolver(name)``.

        The resolver returns the entry or raises a KeyError / ValueError naming what is wrong
        with the name; registered names always win over a prefix.
        """
        if prefix in self._prefix_resolvers:
            raise KeyError(f"{self.what}: prefix {prefix!r} is registered twice")
        self._prefix_resolvers[prefix] = resolver

    def get(self, name: str) -> Any:
        """The entry registered under ``name`` (or resolved by its prefix); a KeyError lists close names if none."""
        key = self._normalize(name)
        if key in self._entries:
            return self._entries[key]
        for prefix, resolver in self._prefix_resolvers.items():
            if name.startswith(prefix):
                return resolver(name)
        close = difflib.get_close_matches(key, list(self._entries), n=5, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else ""
        raise KeyError(
            f"{self.what}: no entry named {name!r}{hint} ({len(self._entries)} registered: {sorted(self._entries)})"
        )

    def __contains__(self, name: str) -> bool:
        """Registered names only (names a prefix resolver takes are checked by `get`)."""
        return self._normalize(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.what!r}, {len(self)} entries)"
