"""Builders: the only place in `data/` that reads the config.

Keys read: TRAIN.{DATASETS, PROPOSAL_FILES, SCALES, MAX_SIZE, USE_FLIPPED, IMS_PER_BATCH,
ASPECT_GROUPING, ASPECT_CROPPING, ASPECT_HI, ASPECT_LO, GT_MIN_AREA, KEEP_EMPTY_IMAGES},
TEST.{DATASETS, SCALE, MAX_SIZE}, PIXEL_MEANS, PIXEL_STDS, INPUT_FORMAT, INPUT_RESIZE,
FPN.{FPN_ON, COARSEST_STRIDE}, MODEL.{KEYPOINTS_ON, MASK_ON, BOX_PLUS_ONE},
DATA_LOADER.{NUM_THREADS, SKIP_MISSING_IMAGES, PIN_MEMORY}, RNG_SEED, DATA_DIR.
DATA_LOADER.NUM_THREADS = -1 picks the worker count from the cores available.
"""

from __future__ import annotations

import os
from functools import partial

import torch
from torch.utils.data import DataLoader

from pydetectron.data.loader import TrainLoader, resolve_num_workers, worker_init
from pydetectron.data.minibatch import RoidbDataset, collate_minibatch
from pydetectron.data.roidb import Roidb
from pydetectron.data.samplers import GroupedBatchSampler, InferenceSampler
from pydetectron.data.training_roidb import combined_roidb_for_training, load_dataset_roidb


def _cache_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "cache")


def _size_divisibility(cfg) -> int:
    return int(cfg.FPN.COARSEST_STRIDE) if cfg.FPN.FPN_ON else 0


def build_train_roidb(cfg, data_dir: str | None = None) -> Roidb:
    """The filtered, flipped, combined roidb of TRAIN.DATASETS."""
    if cfg.TRAIN.PROPOSAL_FILES:
        raise NotImplementedError(
            "TRAIN.PROPOSAL_FILES (precomputed proposals) are not supported by the data "
            "loader; train with RPN (MODEL.FASTER_RCNN or RPN_ONLY) instead"
        )
    data_dir = data_dir or cfg.DATA_DIR
    return combined_roidb_for_training(
        tuple(cfg.TRAIN.DATASETS),
        data_dir=data_dir,
        cache_dir=_cache_dir(data_dir),
        use_flipped=bool(cfg.TRAIN.USE_FLIPPED),
        gt_min_area=float(cfg.TRAIN.GT_MIN_AREA),
        keep_empty=bool(cfg.TRAIN.KEEP_EMPTY_IMAGES),
        keypoints_on=bool(cfg.MODEL.KEYPOINTS_ON),
        mask_on=bool(cfg.MODEL.MASK_ON),
        plus_one=bool(cfg.MODEL.BOX_PLUS_ONE),
        skip_missing=bool(cfg.DATA_LOADER.SKIP_MISSING_IMAGES),
    )


def build_train_loader(
    cfg,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    images_per_batch: int | None = None,
    data_dir: str | None = None,
    roidb: Roidb | None = None,
) -> TrainLoader:
    """Endless, resumable loader of this rank's training minibatches.

    `num_workers` defaults to DATA_LOADER.NUM_THREADS (the tools' `--nw`; -1: from the cores);
    `images_per_batch` to TRAIN.IMS_PER_BATCH (per rank).
    """
    roidb = roidb if roidb is not None else build_train_roidb(cfg, data_dir)
    dataset = RoidbDataset(
        roidb,
        scales=tuple(cfg.TRAIN.SCALES),
        max_size=int(cfg.TRAIN.MAX_SIZE),
        pixel_means=cfg.PIXEL_MEANS,
        pixel_stds=cfg.PIXEL_STDS,
        input_format=cfg.INPUT_FORMAT,
        mask_format="polygon" if cfg.MODEL.MASK_ON else None,
        keypoints=bool(cfg.MODEL.KEYPOINTS_ON),
        aspect_cropping=bool(cfg.TRAIN.ASPECT_CROPPING),
        aspect_lo=float(cfg.TRAIN.ASPECT_LO),
        aspect_hi=float(cfg.TRAIN.ASPECT_HI),
        skip_missing=bool(cfg.DATA_LOADER.SKIP_MISSING_IMAGES),
        resize=str(cfg.INPUT_RESIZE),
    )
    sampler = GroupedBatchSampler(
        roidb.aspect_ratios,
        images_per_batch or int(cfg.TRAIN.IMS_PER_BATCH),
        num_scales=len(cfg.TRAIN.SCALES),
        group_by_aspect=bool(cfg.TRAIN.ASPECT_GROUPING),
        seed=int(cfg.RNG_SEED),
        rank=rank,
        world_size=world_size,
    )
    return TrainLoader(
        dataset,
        sampler,
        num_workers=int(cfg.DATA_LOADER.NUM_THREADS if num_workers is None else num_workers),
        pin_memory=bool(cfg.DATA_LOADER.PIN_MEMORY) and torch.cuda.is_available(),
        size_divisibility=_size_divisibility(cfg),
    )


def build_test_dataset(cfg, dataset_name: str | None = None, data_dir: str | None = None):
    """The unflipped, unfiltered roidb of `dataset_name` (default TEST.DATASETS[0])."""
    if dataset_name is None:
        if not cfg.TEST.DATASETS:
            raise ValueError("no test dataset given (TEST.DATASETS is empty)")
        dataset_name = cfg.TEST.DATASETS[0]
    data_dir = data_dir or cfg.DATA_DIR
    return load_dataset_roidb(
        dataset_name,
        data_dir=data_dir,
        cache_dir=_cache_dir(data_dir),
        plus_one=bool(cfg.MODEL.BOX_PLUS_ONE),
    )


def build_test_loader(
    cfg,
    roidb: Roidb,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
) -> DataLoader:
    """One image per batch at TEST.SCALE, in roidb order, this rank's contiguous shard."""
    dataset = RoidbDataset(
        roidb,
        scales=(int(cfg.TEST.SCALE),),
        max_size=int(cfg.TEST.MAX_SIZE),
        pixel_means=cfg.PIXEL_MEANS,
        pixel_stds=cfg.PIXEL_STDS,
        input_format=cfg.INPUT_FORMAT,
        with_targets=False,
        resize=str(cfg.INPUT_RESIZE),
    )
    workers = resolve_num_workers(cfg.DATA_LOADER.NUM_THREADS if num_workers is None else num_workers)
    return DataLoader(
        dataset,
        batch_size=1,
        sampler=InferenceSampler(len(dataset), rank, world_size),
        num_workers=workers,
        collate_fn=partial(collate_minibatch, size_divisibility=_size_divisibility(cfg)),
        pin_memory=bool(cfg.DATA_LOADER.PIN_MEMORY) and torch.cuda.is_available(),
        worker_init_fn=worker_init if workers > 0 else None,
    )
