"""Load one COCO-format json into a `Roidb`, through the on-disk cache."""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pydetectron.data.coco_json import DatasetFormatError, parse_coco_json
from pydetectron.data.dataset_info import DatasetInfo
from pydetectron.data.roidb import Roidb
from pydetectron.data.roidb_cache import cache_key, load_cached_tables, save_cached_tables

logger = logging.getLogger(__name__)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic GC: a big json makes millions of objects and no cycles, and
    the collector would otherwise rescan them over and over while they are created."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_json(json_file: str | os.PathLike) -> dict:
    """json.load with errors that name the file."""
    path = Path(json_file)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}: not valid JSON ({exc})") from None


def load_coco_roidb(
    json_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    name: str | None = None,
    image_prefix: str = "",
    gt_min_area: float = -1.0,
    plus_one: bool = True,
    require_segms: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Roidb:
    """Cleaned roidb (one unflipped entry per image, sorted by image id) of a COCO json.

    With `cache_dir`, the cleaned tables are read from / written to a cache keyed by
    the json's path, size and mtime and by (`gt_min_area`, `plus_one`, `require_segms`).
    """
    json_file = os.fspath(json_file)
    name = name or Path(json_file).stem
    params = {
        "gt_min_area": float(gt_min_area),
        "plus_one": bool(plus_one),
        "require_segms": bool(require_segms),
    }
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"annotation file '{json_file}' of dataset '{name}' not found")
    key = cache_key(json_file, params) if cache_dir is not None else None
    cached = load_cached_tables(cache_dir, json_file, key) if key else None
    start = time.perf_counter()
    if cached is not None:
        tables, meta = cached
        info = DatasetInfo.from_json(meta["info"])
        logger.info("Loaded roidb of '%s' from cache (%d images)", name, tables.num_images)
    else:
        with _gc_paused():
            parsed = parse_coco_json(
                read_json(json_file),
                source=json_file,
                gt_min_area=gt_min_area,
                plus_one=plus_one,
                require_segms=require_segms,
            )
        tables = parsed.tables
        info = DatasetInfo(
            name=name,
            json_file=json_file,
            image_dir=os.fspath(image_dir),
            classes=parsed.classes,
            json_category_ids=parsed.json_category_ids,
            image_prefix=image_prefix,
            keypoint_names=parsed.keypoint_names,
            keypoint_flip_pairs=parsed.keypoint_flip_pairs,
        )
        logger.info(parsed.stats.message(json_file))
        if key:
            save_cached_tables(
                cache_dir, json_file, key, tables, {"info": info.to_json(), "params": params}
            )
        logger.info(
            "Built roidb of '%s' (%d images) in %.2fs",
            name,
            tables.num_images,
            time.perf_counter() - start,
        )
    # The cache may come from another location of the same files: paths come from the caller.
    info.name = name
    info.json_file = json_file
    info.image_dir = os.fspath(image_dir)
    info.image_prefix = image_prefix
    return Roidb([info], tables, np.zeros(tables.num_images, dtype=np.int32), plus_one=plus_one)
