"""Assemble the roidb used for training (Detectron's `combined_roidb_for_training`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from pydetectron.data.catalog import resolve_dataset
from pydetectron.data.json_dataset import load_coco_roidb
from pydetectron.data.roidb import Roidb

logger = logging.getLogger(__name__)


def load_dataset_roidb(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    gt_min_area: float = -1.0,
    plus_one: bool = True,
    require_segms: bool = False,
) -> Roidb:
    """Unflipped, unfiltered roidb of catalog dataset `name`."""
    resolved = resolve_dataset(name, data_dir)
    return load_coco_roidb(
        resolved.json_file,
        resolved.image_dir,
        name=name,
        image_prefix=resolved.image_prefix,
        gt_min_area=gt_min_area,
        plus_one=plus_one,
        require_segms=require_segms,
        cache_dir=cache_dir,
    )


def drop_missing_images(roidb: Roidb, skip_missing: bool) -> Roidb:
    """Check every image file exists; drop the missing ones (warning) or raise naming one."""
    rows, first_entry = np.unique(roidb.entry_image, return_index=True)
    paths = [roidb.image_path(int(i)) for i in first_entry]
    missing = [j for j, path in enumerate(paths) if not os.path.isfile(path)]
    if not missing:
        return roidb
    examples = ", ".join(f"'{paths[j]}'" for j in missing[:3])
    message = f"{len(missing)} of {len(rows)} images not found, e.g. {examples}"
    if not skip_missing:
        raise FileNotFoundError(message + " (set DATA_LOADER.SKIP_MISSING_IMAGES to skip them)")
    logger.warning("%s; skipping them", message)
    return roidb.select(~np.isin(roidb.entry_image, rows[missing]))


def filter_for_training(roidb: Roidb, keep_empty: bool = False, keypoints_on: bool = False):
    """Drop entries without a non-crowd box (unless `keep_empty`) or, for keypoint
    training, without a visible keypoint (Detectron's `filter_for_training`)."""
    valid = np.ones(len(roidb), dtype=bool)
    if not keep_empty:
        valid &= roidb.num_boxes() > 0
    if keypoints_on:
        valid &= roidb.has_visible_keypoints()
    logger.info(
        "Filtered %d roidb entries: %d -> %d", len(roidb) - valid.sum(), len(roidb), valid.sum()
    )
    return roidb.select(valid)


def combined_roidb_for_training(
    dataset_names: str | Sequence[str],
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_flipped: bool = True,
    gt_min_area: float = -1.0,
    keep_empty: bool = False,
    keypoints_on: bool = False,
    mask_on: bool = False,
    plus_one: bool = True,
    skip_missing: bool = False,
    check_images: bool = True,
) -> Roidb:
    """Load, flip, concatenate and filter the roidbs of `dataset_names`.

    With `mask_on`, annotations without any usable segmentation are dropped (a mask
    head needs one for every box). `check_images` verifies each file exists up front.
    """
    if isinstance(dataset_names, str):
        dataset_names = (dataset_names,)
    if not dataset_names:
        raise ValueError("no training datasets given (TRAIN.DATASETS is empty)")
    roidbs = []
    for name in dataset_names:
        roidb = load_dataset_roidb(
            name,
            data_dir=data_dir,
            cache_dir=cache_dir,
            gt_min_area=gt_min_area,
            plus_one=plus_one,
            require_segms=mask_on,
        )
        if keypoints_on and roidb.tables.keypoints is None:
            raise ValueError(f"keypoint training needs keypoints, dataset '{name}' has none")
        if check_images:
            roidb = drop_missing_images(roidb, skip_missing)
        if use_flipped:
            logger.info("Appending horizontally-flipped training examples of '%s'", name)
            roidb = roidb.with_flipped()
        roidbs.append(roidb)
    roidb = Roidb.concatenate(roidbs)
    return filter_for_training(roidb, keep_empty=keep_empty, keypoints_on=keypoints_on)
