"""Hand-built COCO fixtures for the data tests (written into pytest's tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

# Category ids are neither contiguous nor sorted: 'cat' (7) -> 1, 'dog' (3) -> 2.
CATEGORIES = [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]

# Columns 2-3, rows 45-54 of an 80x100 image (column-major runs, zeros first).
CROWD_RLE = {"size": [80, 100], "counts": [205, 10, 70, 10, 7705]}


def square(x: float, y: float, side: float) -> list[float]:
    return [x, y, x + side, y, x + side, y + side, x, y + side]


def basic_coco() -> dict:
    """Three images (json order not sorted by id) and annotations hitting every rule."""
    images = [
        {"id": 20, "file_name": "b.jpg", "width": 60, "height": 90},
        {"id": 10, "file_name": "a.jpg", "width": 100, "height": 80},
        {"id": 30, "file_name": "empty.jpg", "width": 50, "height": 50},
    ]
    anns = [
        # image 10: a plain box with a polygon
        {"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 20, 30, 40], "area": 1200.0,
         "iscrowd": 0, "segmentation": [square(10, 20, 30)]},
        # image 10: runs past the right/bottom border -> clipped to (99, 79)
        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [90, 70, 20, 20], "area": 100.0,
         "iscrowd": 0, "segmentation": [square(90, 70, 9)]},
        # image 10: one invalid polygon (2 points) is removed, the valid one stays
        {"id": 3, "image_id": 10, "category_id": 3, "bbox": [50, 10, 20, 10], "area": 150.0,
         "iscrowd": 0, "segmentation": [[50, 10, 60, 10], square(50, 10, 10)]},
        # image 10: crowd region with an uncompressed RLE
        {"id": 4, "image_id": 10, "category_id": 7, "bbox": [2, 45, 2, 10], "area": 20.0,
         "iscrowd": 1, "segmentation": CROWD_RLE},
        # image 10: degenerate (w < 1 -> x2 == x1 with Detectron's +1) -> dropped
        {"id": 5, "image_id": 10, "category_id": 7, "bbox": [5, 5, 0.5, 10], "area": 5.0,
         "iscrowd": 0, "segmentation": [square(5, 5, 1)]},
        # image 10: zero area -> dropped
        {"id": 6, "image_id": 10, "category_id": 7, "bbox": [5, 5, 10, 10], "area": 0.0,
         "iscrowd": 0, "segmentation": [square(5, 5, 10)]},
        # image 20: a small box (area 16) -> dropped only when GT_MIN_AREA > 16
        {"id": 7, "image_id": 20, "category_id": 3, "bbox": [1, 2, 4, 4], "area": 16.0,
         "iscrowd": 0, "segmentation": [square(1, 2, 4)]},
        # image 20: marked ignore -> dropped
        {"id": 8, "image_id": 20, "category_id": 3, "bbox": [1, 2, 14, 14], "area": 196.0,
         "iscrowd": 0, "ignore": 1, "segmentation": [square(1, 2, 14)]},
        # image 20: entirely outside the image -> degenerate after clipping -> dropped
        {"id": 9, "image_id": 20, "category_id": 7, "bbox": [70, 10, 10, 10], "area": 100.0,
         "iscrowd": 0, "segmentation": [square(70, 10, 10)]},
        # image 20: a valid one listed after the dropped ones
        {"id": 10, "image_id": 20, "category_id": 7, "bbox": [20, 30, 10.5, 20], "area": 210.0,
         "iscrowd": 0, "segmentation": [square(20, 30, 10)]},
    ]
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def keypoint_coco() -> dict:
    """One image 40 px wide with a 3-keypoint category (nose, left_eye, right_eye)."""
    cats = [{"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"]}]
    images = [{"id": 1, "file_name": "p.jpg", "width": 40, "height": 30}]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400.0,
         "iscrowd": 0, "segmentation": [square(5, 5, 20)],
         "keypoints": [10, 12, 2, 8, 9, 1, 0, 0, 0]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 5, 10, 10], "area": 100.0,
         "iscrowd": 0, "segmentation": [square(20, 5, 10)],
         "keypoints": [0, 0, 0, 0, 0, 0, 0, 0, 0]},
    ]
    return {"images": images, "annotations": anns, "categories": cats}


def write_dataset(root: Path, data: dict, with_images: bool = True, seed: int = 0) -> tuple:
    """Write `data` as root/annotations.json and random JPEG images; returns (json, image dir)."""
    root.mkdir(parents=True, exist_ok=True)
    image_dir = root / "images"
    image_dir.mkdir(exist_ok=True)
    if with_images:
        rng = np.random.default_rng(seed)
        for im in data["images"]:
            pixels = rng.integers(0, 256, size=(im["height"], im["width"], 3), dtype=np.uint8)
            cv2.imwrite(str(image_dir / im["file_name"]), pixels)
    json_file = root / "annotations.json"
    json_file.write_text(json.dumps(data))
    return json_file, image_dir


def write_png_dataset(root: Path, data: dict, seed: int = 0) -> tuple:
    """As write_dataset but every file name is turned into a lossless .png."""
    data = json.loads(json.dumps(data))
    for im in data["images"]:
        im["file_name"] = Path(im["file_name"]).with_suffix(".png").name
    return write_dataset(root, data, seed=seed)
