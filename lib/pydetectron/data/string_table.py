"""Many strings packed into two numpy arrays (bytes + offsets).

Why: a roidb for 100k+ images keeps file names and RLE counts this way so that it
can be saved with `np.savez` (no pickle), shared copy-on-write with loader workers,
and concatenated without Python loops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class StringTable:
    """An immutable sequence of byte strings stored as `data` (uint8) and `offsets` (int64)."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0:
            raise ValueError("StringTable offsets must be a 1-D array starting at 0")
        if offsets[-1] != len(data):
            raise ValueError(
                f"StringTable offsets end at {int(offsets[-1])} but data holds {len(data)} bytes"
            )
        self.data = np.asarray(data, dtype=np.uint8)
        self.offsets = np.asarray(offsets, dtype=np.int64)

    @classmethod
    def from_strings(cls, items: Iterable[str | bytes]) -> StringTable:
        """Pack str (UTF-8 encoded) or bytes items."""
        encoded = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in items]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(data, offsets)

    @classmethod
    def concatenate(cls, tables: Sequence[StringTable]) -> StringTable:
        """Join tables end to end."""
        if not tables:
            return cls.from_strings([])
        data = np.concatenate([t.data for t in tables])
        parts = [np.zeros(1, dtype=np.int64)]
        base = 0
        for table in tables:
            parts.append(table.offsets[1:] + base)
            base += len(table.data)
        return cls(data, np.concatenate(parts))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get_bytes(self, index: int) -> bytes:
        """The raw bytes of item `index`."""
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.data[start:end].tobytes()

    def __getitem__(self, index: int) -> str:
        """Item `index` decoded as UTF-8."""
        return self.get_bytes(index).decode("utf-8")

    def to_list(self) -> list[str]:
        """All items decoded as UTF-8."""
        return [self[i] for i in range(len(self))]
