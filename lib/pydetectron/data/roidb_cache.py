"""On-disk cache of cleaned annotation tables: `.npz` (no pickle) + a `.json` sidecar.

The cache key hashes the json file's resolved path, size and modification time with
the cleaning parameters and a format version, so editing the json (or changing
GT_MIN_AREA, the box convention, ...) invalidates it. Nothing in a cache file can
execute code: arrays load with `allow_pickle=False`, metadata is plain JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from pydetectron.data.annotation_tables import AnnotationTables

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


def cache_key(json_file: str | os.PathLike, params: dict) -> str:
    """Hex digest identifying `json_file`'s current contents and the cleaning `params`."""
    path = Path(json_file).resolve()
    stat = path.stat()
    payload = json.dumps(
        {
            "version": CACHE_FORMAT_VERSION,
            "path": str(path),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "params": params,
        },
        sort_keys=True,
    )
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:20]


def _stem(json_file: str | os.PathLike) -> str:
    """File-name prefix unique to one json path (two `annotations.json` never collide)."""
    path = Path(json_file).resolve()
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) + "_" + digest


def cache_paths(cache_dir: str | os.PathLike, json_file, key: str) -> tuple[Path, Path]:
    """(arrays .npz, metadata .json) paths of a cache entry."""
    base = Path(cache_dir) / f"{_stem(json_file)}_roidb_{key}"
    return base.with_suffix(".npz"), base.with_suffix(".json")


def load_cached_tables(cache_dir, json_file, key: str) -> tuple[AnnotationTables, dict] | None:
    """The cached (tables, metadata) for `key`, or None when absent or unreadable."""
    npz_path, meta_path = cache_paths(cache_dir, json_file, key)
    if not (npz_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        with np.load(npz_path, allow_pickle=False) as arrays:
            tables = AnnotationTables.from_arrays({k: arrays[k] for k in arrays.files})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        logger.warning("Ignoring unreadable roidb cache %s (%s)", npz_path, exc)
        return None
    return tables, meta


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is shared like the data
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_cached_tables(cache_dir, json_file, key: str, tables: AnnotationTables, meta: dict):
    """Write a cache entry atomically and remove stale entries of the same json."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    npz_path, meta_path = cache_paths(cache_dir, json_file, key)
    _atomic_write(npz_path, lambda f: np.savez(f, **tables.to_arrays()))
    meta = dict(meta, key=key)
    _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode("utf-8")))
    stale = re.compile(re.escape(_stem(json_file)) + r"_roidb_[0-9a-f]{20}\.(npz|json)$")
    for path in cache_dir.iterdir():
        if stale.match(path.name) and key not in path.name:
            try:
                path.unlink()
            except OSError:
                pass
