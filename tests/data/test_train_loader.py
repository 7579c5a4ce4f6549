"""Builders from the config: the training loader (workers, padding, resume) and test loader."""

from __future__ import annotations

from itertools import islice

import pytest
import torch

from pydetectron.config import get_cfg
from pydetectron.data import (
    build_test_dataset,
    build_test_loader,
    build_train_loader,
    compute_scale,
    write_shapes_dataset,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_shapes_dataset(root / "shapes" / "shapes_train", num_images=10, seed=21)
    write_shapes_dataset(root / "shapes" / "shapes_val", num_images=3, seed=22)
    write_shapes_dataset(
        root / "shapes" / "keypoints_shapes_train", num_images=6, seed=23, keypoints=True
    )
    return root


def _cfg(data_dir):
    cfg = get_cfg()
    cfg.DATA_DIR = str(data_dir)
    cfg.TRAIN.DATASETS = ("shapes_train",)
    cfg.TEST.DATASETS = ("shapes_val",)
    cfg.TRAIN.SCALES = (64, 96)
    cfg.TRAIN.MAX_SIZE = 160
    cfg.TRAIN.IMS_PER_BATCH = 2
    cfg.TEST.SCALE = 80
    cfg.TEST.MAX_SIZE = 160
    cfg.DATA_LOADER.NUM_THREADS = 0
    return cfg


def test_train_loader_from_cfg(data_dir):
    cfg = _cfg(data_dir)
    cfg.FPN.FPN_ON = True
    cfg.FPN.COARSEST_STRIDE = 32
    cfg.MODEL.MASK_ON = True
    loader = build_train_loader(cfg)
    assert len(loader.roidb) == 20  # every image and its flipped copy (all have boxes)
    assert loader.roidb.entry_flipped.sum() == 10
    assert list((data_dir / "cache").glob("*.npz"))
    for batch in islice(iter(loader), 4):
        data, im_info = batch["data"], batch["im_info"]
        assert data.shape[0] == 2 and data.shape[2] % 32 == 0 and data.shape[3] % 32 == 0
        for index, (h, w, scale), targets in zip(
            batch["indices"], im_info.tolist(), batch["targets"]
        ):
            orig_h, orig_w = loader.roidb.heights[index], loader.roidb.widths[index]
            assert scale in [pytest.approx(compute_scale(orig_h, orig_w, s, 160)) for s in (64, 96)]
            assert (h, w) == (round(orig_h * scale), round(orig_w * scale))
            assert data.shape[2] >= h and data.shape[3] >= w
            boxes = targets.boxes
            assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
            assert len(targets.masks) == len(boxes)
    assert loader.state_dict()["sampler"]["next_batch"] == 4


def test_resume_with_workers_matches_uninterrupted_run(data_dir):
    cfg = _cfg(data_dir)
    straight = [b for b in islice(iter(build_train_loader(cfg)), 5)]
    with_workers = build_train_loader(cfg, num_workers=2)
    with_workers.timeout = 60  # fail instead of hanging
    first = [b for b in islice(iter(with_workers), 3)]  # workers prefetch beyond these
    state = with_workers.state_dict()
    assert state["sampler"]["next_batch"] == 3
    resumed = build_train_loader(cfg)
    resumed.load_state_dict(state)
    rest = [b for b in islice(iter(resumed), 2)]
    for got, want in zip(first + rest, straight):
        assert torch.equal(got["indices"], want["indices"])
        torch.testing.assert_close(got["data"], want["data"])
        torch.testing.assert_close(got["im_info"], want["im_info"])


def test_ranks_get_disjoint_images(data_dir):
    cfg = _cfg(data_dir)
    cfg.TRAIN.IMS_PER_BATCH = 1
    ranks = [build_train_loader(cfg, rank=r, world_size=2) for r in range(2)]
    for a, b in zip(islice(iter(ranks[0]), 3), islice(iter(ranks[1]), 3)):
        assert a["indices"].item() != b["indices"].item()


def test_keypoint_loader(data_dir):
    cfg = _cfg(data_dir)
    cfg.TRAIN.DATASETS = ("keypoints_shapes_train",)
    cfg.MODEL.KEYPOINTS_ON = True
    batch = next(iter(build_train_loader(cfg)))
    for targets in batch["targets"]:
        kps = targets.keypoints
        assert kps.shape == (len(targets.boxes), 4, 3)
        assert (kps[:, :, 2] > 0).any()


def test_test_loader_in_order_at_test_scale(data_dir):
    cfg = _cfg(data_dir)
    roidb = build_test_dataset(cfg)
    assert len(roidb) == 3 and not roidb.entry_flipped.any()
    batches = list(build_test_loader(cfg, roidb))
    assert [b["image_ids"].item() for b in batches] == list(roidb.image_ids)
    for b in batches:
        h, w, scale = b["im_info"][0].tolist()
        assert min(h, w) == 80 or max(h, w) == 160
        assert "targets" not in b
