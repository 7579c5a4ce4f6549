"""Reading a weights file safely: restricted unpickling for `.pkl`, `weights_only` for torch files.

Every failure is a one-line WeightsError naming the file: refused content (with the
object it tried to use), truncated or corrupt data, or content that is not a dict.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile

import torch

from .errors import WeightsError
from .safe_pickle import load_pickle

PICKLE_SUFFIXES = (".pkl", ".pickle")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _unpickling_problem(path: str, error: Exception) -> str:
    """One line from torch's multi-paragraph weights_only error: the refused object, or the damage."""
    text = str(error)
    match = _GLOBAL.search(text)
    if match:
        return (
            f"{path}: refused {match.group(1)}: a weights file may hold only tensors, numbers, strings and "
            "plain containers"
        )
    lines = [line.strip() for line in text.splitlines() if "nsupported" in line] or [text.strip() or "?"]
    return f"{path}: not a readable checkpoint, the file is truncated or corrupt ({lines[0].splitlines()[0]})"


def read_torch_file(path: str) -> object:
    """`torch.load(path, weights_only=True)` on the CPU, with one-line errors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsError(_unpickling_problem(path, error)) from None
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(
            f"{path}: not a readable checkpoint, the file is truncated or corrupt ({type(error).__name__}: {first})"
        ) from None


def read_weights_file(path: str) -> tuple[dict, bool]:
    """(content, is_detectron_pickle) of the weights file `path` (which must exist).

    `.pkl` / `.pickle` files are read with the restricted unpickler unless they are in
    fact torch zip archives; everything else with `torch.load(weights_only=True)`.
    """
    if os.path.getsize(path) == 0:
        raise WeightsError(f"{path}: empty file")
    is_pickle = path.lower().endswith(PICKLE_SUFFIXES) and not zipfile.is_zipfile(path)
    data = load_pickle(path) if is_pickle else read_torch_file(path)
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a dict of weights, found a {type(data).__name__}")
    return data, is_pickle
