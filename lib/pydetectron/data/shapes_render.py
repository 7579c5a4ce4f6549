"""Drawing primitives of the shapes dataset: shape outlines, textured backgrounds, rasters.

Everything is a pure function of a numpy Generator, so a dataset is reproducible
from its seed.
"""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_util

SHAPE_CLASSES = ("circle", "square", "triangle", "star")
CIRCLE_SIDES = 48


def shape_outline(kind: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """[V, 2] float64 vertices of a shape rotated by `angle` rad.

    `size` is the diameter of the circle through the outer vertices, so every shape
    fits a `size` x `size` box whatever its rotation. Triangles are equilateral with
    vertex 0 the apex (pointing up at angle 0).
    """
    radius = size / 2.0
    if kind == "circle":
        t = np.linspace(0.0, 2.0 * np.pi, CIRCLE_SIDES, endpoint=False)
        r = np.full_like(t, radius)
    elif kind == "square":
        t = np.pi / 4 + np.arange(4) * np.pi / 2
        r = np.full(4, radius)
    elif kind == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2.0 * np.pi / 3
        r = np.full(3, radius)
    elif kind == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    else:
        raise ValueError(f"unknown shape kind '{kind}'; expected one of {SHAPE_CLASSES}")
    t = t + angle
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def raster_polygons(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """uint8 [H, W] mask of flat polygons, rasterised exactly as pycocotools does."""
    flat = [np.asarray(p, dtype=np.float64).ravel() for p in polygons]
    rle = mask_util.merge(mask_util.frPyObjects(flat, height, width))
    return np.ascontiguousarray(mask_util.decode(rle))


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted, noisy, low-frequency textured BGR uint8 image."""
    base = rng.uniform(60, 170, size=3)
    grid = rng.uniform(-35, 35, size=(int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
    blobs = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(6, 24)
    direction = rng.uniform(0, np.pi)
    stripes = 10 * np.sin((xx * np.cos(direction) + yy * np.sin(direction)) * 2 * np.pi / period)
    noise = rng.normal(0, 8, size=(height, width, 3)).astype(np.float32)
    image = base[None, None, :] + blobs + stripes[..., None] * rng.uniform(0, 1) + noise
    return np.clip(image, 0, 255).astype(np.uint8)


def bright_color(rng: np.random.Generator) -> np.ndarray:
    """A saturated BGR colour that stands out from the muted backgrounds."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(170, 256), rng.integers(200, 256)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def paint(image: np.ndarray, mask: np.ndarray, color: np.ndarray, rng: np.random.Generator):
    """Fill `mask` pixels of `image` with `color` plus a little noise (in place)."""
    ys, xs = np.nonzero(mask)
    noise = rng.normal(0, 6, size=(len(ys), 3))
    image[ys, xs] = np.clip(color[None, :] + noise, 0, 255).astype(np.uint8)


def has_holes(mask: np.ndarray) -> bool:
    """Whether a bitmap's foreground encloses background (a polygon cannot say so)."""
    _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())
