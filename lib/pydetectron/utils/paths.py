"""Where the source checkout and the data live."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "PYDETECTRON_DATA_DIR"


def repo_root() -> Path:
    """The source checkout (lib/pydetectron/utils/paths.py -> ../../..); data/ and configs/ live there."""
    return Path(__file__).resolve().parents[3]


def default_data_dir() -> str:
    """`$PYDETECTRON_DATA_DIR`, else the `data/` folder of the source checkout."""
    return os.environ.get(DATA_DIR_ENV) or str(repo_root() / "data")
