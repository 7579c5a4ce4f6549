"""Instance masks as COCO polygons or RLE: flipping, scaling and rasterising to bitmaps.

A polygon set is a list of flat float arrays `[x0, y0, x1, y1, ...]` (one per connected
part). An RLE is pycocotools' dict `{"size": [h, w], "counts": bytes | list[int]}`.
Bitmaps are uint8 arrays `[H, W]` holding 0/1.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_util

Polygons = list[np.ndarray]


def compress_rle(rle: dict) -> dict:
    """Return `rle` with compressed (bytes) counts; uncompressed list counts are encoded."""
    if "size" not in rle or "counts" not in rle:
        raise ValueError(f"an RLE needs 'size' and 'counts', got keys {sorted(rle)}")
    height, width = (int(v) for v in rle["size"])
    if isinstance(rle["counts"], list):
        return mask_util.frPyObjects(rle, height, width)
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [height, width], "counts": counts}


def rle_to_bitmap(rle: dict) -> np.ndarray:
    """Decode an RLE (compressed or not) into a uint8 [H, W] bitmap."""
    return np.ascontiguousarray(mask_util.decode(compress_rle(rle)))


def bitmap_to_rle(bitmap: np.ndarray) -> dict:
    """Encode a [H, W] 0/1 bitmap as a compressed RLE."""
    return mask_util.encode(np.asfortranarray(bitmap.astype(np.uint8, copy=False)))


def polygons_to_bitmap(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise a polygon set into a uint8 [height, width] bitmap (pycocotools' rule)."""
    parts = [np.asarray(p, dtype=np.float64) for p in polygons if len(p) >= 6]
    if not parts:
        return np.zeros((height, width), dtype=np.uint8)
    rles = mask_util.frPyObjects(parts, height, width)
    return np.ascontiguousarray(mask_util.decode(mask_util.merge(rles)))


def polygon_area(polygons: Sequence[np.ndarray]) -> float:
    """Sum of the shoelace areas of the parts of a polygon set (float64)."""
    total = 0.0
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        x, y = xy[:, 0], xy[:, 1]
        total += 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return total


def flip_polygons(polygons: Sequence[np.ndarray], width: int, plus_one: bool = True) -> Polygons:
    """Mirror a polygon set left-right in an image `width` pixels wide.

    `plus_one=True` is Detectron's rule (x -> width - 1 - x, matching its +1 boxes);
    `plus_one=False` mirrors continuous coordinates (x -> width - x).
    """
    offset = 1.0 if plus_one else 0.0
    flipped = []
    for poly in polygons:
        out = np.array(poly, dtype=np.float32, copy=True)
        out[0::2] = width - offset - out[0::2]
        flipped.append(out)
    return flipped


def scale_polygons(polygons: Sequence[np.ndarray], scale: float) -> Polygons:
    """Multiply every coordinate of a polygon set by `scale`."""
    return [np.asarray(p, dtype=np.float32) * np.float32(scale) for p in polygons]


def flip_rle(rle: dict) -> dict:
    """Mirror an RLE left-right (decode, flip, encode), as Detectron does for crowd masks."""
    return bitmap_to_rle(rle_to_bitmap(rle)[:, ::-1])


def bitmap_to_polygons(bitmap: np.ndarray) -> Polygons:
    """Outer contours of a bitmap as flat float32 polygons (parts with >= 3 points).

    Holes are not represented (a polygon set cannot express them).
    """
    contours, _ = cv2.findContours(
        bitmap.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [c.reshape(-1).astype(np.float32) for c in contours if len(c) >= 3]


def resize_bitmap(bitmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a 0/1 bitmap to [height, width]."""
    if bitmap.shape == (height, width):
        return bitmap
    return cv2.resize(bitmap, (width, height), interpolation=cv2.INTER_NEAREST)
