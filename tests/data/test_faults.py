"""Faults at the data layer: truncated images, skipped-image counts, loader workers and stop signals,
PYDETECTRON_DATA_DIR."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from itertools import islice

import cv2
import numpy as np
import pytest

from pydetectron.config import get_cfg
from pydetectron.data import build_test_dataset, build_train_loader, build_train_roidb, write_shapes_dataset
from pydetectron.data.transforms import ImageReadError, read_image, truncation_reason
from pydetectron.evaluation import infer_range
from pydetectron.utils.paths import DATA_DIR_ENV


def encoded(extension: str, seed: int = 0) -> tuple[np.ndarray, bytes]:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(extension, pixels)
    assert ok
    return pixels, data.tobytes()


@pytest.mark.parametrize(("extension", "reason"), [(".jpg", "truncated JPEG"), (".png", "truncated PNG")])
def test_a_truncated_image_is_corrupt_and_named(tmp_path, extension, reason):
    pixels, data = encoded(extension)
    whole, cut = tmp_path / f"whole{extension}", tmp_path / f"cut{extension}"
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert truncation_reason(data) == "" and read_image(str(whole)).shape == (48, 64, 3)
    if extension == ".png":
        assert np.array_equal(read_image(str(whole)), pixels)
    with pytest.raises(ImageReadError, match=rf"'{cut}' \({reason}"):
        read_image(str(cut))
    # OpenCV alone decodes the truncated JPEG without an error: the reason this check exists
    if extension == ".jpg":
        assert cv2.imread(str(cut)) is not None


def test_bytes_after_the_end_marker_are_allowed(tmp_path):
    _, data = encoded(".jpg")
    path = tmp_path / "camera.jpg"
    path.write_bytes(data + b"\x00\x11trailing maker notes")
    assert np.array_equal(read_image(str(path)), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    with pytest.raises(ImageReadError, match="empty file"):
        (tmp_path / "empty.jpg").write_bytes(b"")
        read_image(str(tmp_path / "empty.jpg"))


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def data_dir(tmp_path):
    write_shapes_dataset(tmp_path / "shapes" / "shapes_train", num_images=6, seed=3, min_side=64, max_side=96)
    write_shapes_dataset(tmp_path / "shapes" / "shapes_val", num_images=3, seed=4, min_side=64, max_side=96)
    return tmp_path


def train_cfg(data_dir, skip: bool):
    cfg = get_cfg()
    cfg.DATA_DIR = str(data_dir)
    cfg.TRAIN.DATASETS = ("shapes_train",)
    cfg.TRAIN.SCALES = (64,)
    cfg.TRAIN.MAX_SIZE = 96
    cfg.TRAIN.USE_FLIPPED = False
    cfg.TRAIN.ASPECT_GROUPING = False
    cfg.DATA_LOADER.SKIP_MISSING_IMAGES = skip
    cfg.DATA_LOADER.NUM_THREADS = 0
    return cfg


def test_training_skips_and_counts_truncated_images_or_stops_naming_one(data_dir, caplog):
    images = sorted((data_dir / "shapes" / "shapes_train" / "images").iterdir())
    assert images[0].suffix == ".jpg"
    truncate(images[1])
    loader = build_train_loader(train_cfg(data_dir, skip=True))
    with caplog.at_level(logging.WARNING):
        batches = list(islice(iter(loader), 6))  # 2 epochs of 3 batches: every image is asked for twice
    assert loader.skipped_images == 2 == sum(len(batch.get("skipped", ())) for batch in batches)
    assert f"{images[1]}' (truncated JPEG" in caplog.text
    bad = [i for i in range(len(loader.roidb)) if loader.roidb.image_path(i) == str(images[1])]
    assert len(bad) == 1
    assert all(bad[0] not in batch["indices"].tolist() for batch in batches)  # replaced, never trained on
    with pytest.raises(ImageReadError, match=rf"{images[1].name}' \(truncated JPEG"):
        list(islice(iter(build_train_loader(train_cfg(data_dir, skip=False))), 6))


def test_evaluation_names_and_skips_a_truncated_image(data_dir, caplog):
    images = sorted((data_dir / "shapes" / "shapes_val" / "images").iterdir())
    truncate(images[2])
    cfg = train_cfg(data_dir, skip=False)
    roidb = build_test_dataset(cfg, "shapes_val")

    class NoModel:
        box_augmentation = type("Off", (), {"enabled": True})()
        transform = None

        def predict_augmented(self, image):
            empty = np.zeros((0, 4), np.float32)
            return type("P", (), {"boxes": empty, "scores": empty[:, 0], "classes": np.zeros(0, np.int64),
                                  "masks": None, "keypoints": None})()  # fmt: skip

    with caplog.at_level(logging.WARNING):
        result = infer_range(NoModel(), roidb, 0, len(roidb), "stamp")
    failed = [image for image in result.images if image.error]
    assert len(failed) == 1 and "truncated JPEG" in failed[0].error
    assert images[2].name in caplog.text


def test_loader_workers_ignore_stop_signals(data_dir):
    cfg = train_cfg(data_dir, skip=False)
    loader = build_train_loader(cfg, num_workers=2)
    batches = iter(loader)
    next(batches)
    workers = multiprocessing.active_children()
    assert len(workers) >= 2
    for worker in workers:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            os.kill(worker.pid, signum)
    for _ in range(6):  # the workers keep serving batches
        assert next(batches)["data"].shape[0] == 2
    assert all(worker.is_alive() for worker in workers)


def test_the_data_dir_environment_variable_is_the_default(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    cfg = get_cfg()
    assert cfg.DATA_DIR == str(data_dir)
    cfg.TRAIN.DATASETS = ("shapes_train",)
    roidb = build_train_roidb(cfg)
    assert len(roidb) == 12 and roidb.image_path(0).startswith(str(data_dir))
    monkeypatch.delenv(DATA_DIR_ENV)
    assert get_cfg().DATA_DIR.endswith(os.path.join("", "data")) and get_cfg().DATA_DIR != str(data_dir)
