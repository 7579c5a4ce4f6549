"""TRAIN.ASPECT_CROPPING: crop images whose aspect ratio lies outside [lo, hi].

As Detectron.pytorch, a very wide (or tall) image is cropped after resizing to the
bounding ratio, so batches of similar ratios pad little; the window is placed at
random (from the sample's seed) where it keeps as many ground-truth boxes as it can.
Boxes are clipped to the window and dropped when nothing of them remains; keypoints
outside the window become unlabeled (v = 0, x = y = 0).
"""

from __future__ import annotations

import math

import numpy as np

from pydetectron.data.targets import ImageTargets


def crop_window(
    height: int, width: int, boxes: np.ndarray, lo: float, hi: float, rng: np.random.Generator
) -> tuple[int, int, int, int] | None:
    """(x0, y0, w, h) of the crop for an image of the given size, or None if none needed."""
    ratio = width / height
    if ratio > hi:
        size, span, axis = min(width, math.ceil(height * hi)), width, 0
    elif ratio < lo:
        size, span, axis = min(height, math.ceil(width / lo)), height, 1
    else:
        return None
    if len(boxes):
        first = int(math.floor(boxes[:, axis].min()))
        last = int(math.floor(boxes[:, axis + 2].max()))
        if last - first + 1 <= size:  # the window can hold every box: slide it around them
            low, high = max(last - size + 1, 0), min(first, span - size)
        else:  # it cannot: keep it inside the boxes' extent
            low, high = max(first, 0), min(last - size + 1, span - size)
    else:
        low, high = 0, span - size
    low, high = min(low, high), max(low, high)
    start = int(rng.integers(max(low, 0), max(high, 0) + 1))
    start = min(start, span - size)
    if axis == 0:
        return start, 0, size, height
    return 0, start, width, size


def crop_targets(
    targets: ImageTargets, window: tuple[int, int, int, int], plus_one: bool = True
) -> ImageTargets:
    """Shift targets into `window`, clip boxes, drop boxes left empty."""
    x0, y0, w, h = window
    off = 1.0 if plus_one else 0.0
    shift = np.array([x0, y0, x0, y0], dtype=np.float32)
    boxes = targets.boxes - shift
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w - off)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h - off)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    polygons = None
    if targets.polygons is not None:
        xy = np.array([x0, y0], dtype=np.float32)
        polygons = [
            [(p.reshape(-1, 2) - xy).reshape(-1) for p in polys] for polys in targets.polygons
        ]
    bitmaps = None
    if targets.bitmaps is not None:
        bitmaps = np.ascontiguousarray(targets.bitmaps[:, y0 : y0 + h, x0 : x0 + w])
    keypoints = None
    if targets.keypoints is not None:
        keypoints = targets.keypoints.copy()
        keypoints[:, :, 0] -= x0
        keypoints[:, :, 1] -= y0
        outside = (
            (keypoints[:, :, 0] < 0)
            | (keypoints[:, :, 1] < 0)
            | (keypoints[:, :, 0] > w - off)
            | (keypoints[:, :, 1] > h - off)
        )
        keypoints[outside] = 0.0
    cropped = ImageTargets(
        boxes=boxes,
        gt_classes=targets.gt_classes,
        is_crowd=targets.is_crowd,
        polygons=polygons,
        bitmaps=bitmaps,
        keypoints=keypoints,
    )
    return cropped.select(keep)
