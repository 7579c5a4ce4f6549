"""Reading and writing Detectron `.pkl` weight files without ever running code from them.

Detectron (Caffe2, Python 2) pickles `{'blobs': {name: ndarray}, 'cfg': yaml_text}` or a
bare blob dict with protocol 2. A pickle can call any importable function, so files are
read with an unpickler that resolves only what such files hold: numpy arrays, dtypes and
scalars (under numpy 1's `numpy.core` and numpy 2's `numpy._core` names), the latin1
byte-string helper Python 3 writes for protocol 2, and plain containers. Anything else
is refused with its name, before it is called.
"""

from __future__ import annotations

import _codecs
import collections
import importlib
import io
import os
import pickle
from typing import Any

import numpy as np

from .errors import WeightsError

# Protocol 2 is what Detectron writes and what Python 2 (and numpy 1) can read back.
DETECTRON_PICKLE_PROTOCOL = 2


def _numpy_multiarray():
    """numpy's multiarray module under its real name (numpy 2: `numpy._core`; numpy 1: `numpy.core`)."""
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


def _latin1_encode(text: Any, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """`_codecs.encode` restricted to what Python 3 writes for bytes under protocol 2."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only latin1 text")
    return _codecs.encode(text, "latin1", errors)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_multiarray()
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("builtins", "__builtin__"):
        allowed[(module, "set")] = set
        allowed[(module, "frozenset")] = frozenset
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy arrays/dtypes/scalars and plain containers."""

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused {module}.{name}: a weights pickle may hold only numpy arrays, dtypes, scalars and "
                "plain containers"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: a weights pickle may not reference outside objects")


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _load(stream: io.IOBase, where: str) -> Any:
    try:
        return RestrictedUnpickler(stream, encoding="latin1").load()
    except pickle.UnpicklingError as error:
        message = _one_line(error)
        if message.startswith("refused"):
            raise WeightsError(f"{where}: {message}") from None
        raise WeightsError(f"{where}: truncated or corrupt pickle ({message})") from None
    except Exception as error:  # anything else a damaged stream makes the unpickler or numpy raise
        message = f"{type(error).__name__}: {_one_line(error)}"
        raise WeightsError(f"{where}: truncated or corrupt pickle ({message})") from None


def load_pickle_bytes(data: bytes, where: str = "<bytes>") -> Any:
    """Unpickle `data` (Python 2 strings decoded as latin1) with `RestrictedUnpickler`."""
    return _load(io.BytesIO(data), where)


def load_pickle(path: str | os.PathLike) -> Any:
    """The object in the pickle file `path`, read safely; a one-line WeightsError names the file."""
    path = os.fspath(path)
    if os.path.getsize(path) == 0:
        raise WeightsError(f"{path}: empty file (not a pickle)")
    with open(path, "rb") as handle:
        return _load(handle, path)


class _Protocol2Pickler(pickle._Pickler):
    """The pure-Python pickler naming numpy's functions as numpy 1 does (`numpy.core.multiarray`).

    numpy 2 would write `numpy._core.multiarray`, which numpy 1 and Python 2 (Detectron) cannot
    import; the names resolve to the same functions either way.
    """

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        if module is not None and module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
            qualified = name or obj.__qualname__
            self.write(pickle.GLOBAL + f"{module}\n{qualified}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_detectron_pickle(obj: Any) -> bytes:
    """`obj` pickled with protocol 2 and numpy 1 names, readable by Detectron and by `load_pickle`."""
    buffer = io.BytesIO()
    _Protocol2Pickler(buffer, protocol=DETECTRON_PICKLE_PROTOCOL).dump(obj)
    return buffer.getvalue()
