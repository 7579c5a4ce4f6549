"""A generated ImageFolder of the shapes classes, for CPU-sized classifier runs and tests.

Each image holds one filled circle, square, triangle or star (the shapes dataset's
classes and drawing code), of random size, rotation and bright colour, on a background
of per-pixel noise around a random muted colour. Layout: `<root>/<split>/<class>/<index>.png`; deterministic from
the seed (image i of a split draws from `default_rng([seed, split_id, i])`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data.shapes_render import SHAPE_CLASSES, bright_color, paint, shape_outline

SUBPIXEL_BITS = 4  # cv2.fillPoly vertex precision: 1/16 pixel

SPLIT_IDS = {"train": 0, "val": 1}


def draw_shape_image(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """One `size` x `size` BGR uint8 image of a single `kind` shape on a noisy flat background."""
    base = rng.uniform(60, 170, size=3)
    image = np.clip(base + rng.normal(0, 20, size=(size, size, 3)), 0, 255).astype(np.uint8)
    diameter = rng.uniform(0.5, 0.95) * size
    margin = diameter / 2
    cx, cy = rng.uniform(margin, size - margin, size=2)
    polygon = shape_outline(kind, cx, cy, diameter, rng.uniform(0, 2 * np.pi))
    mask = np.zeros((size, size), dtype=np.uint8)
    vertices = np.round(polygon * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    paint(image, mask, bright_color(rng), rng)
    return image


def write_shapes_image_folder(
    root: str | Path,
    images_per_class: dict[str, int] | None = None,
    size: int = 40,
    seed: int = 0,
    classes: tuple[str, ...] = SHAPE_CLASSES,
) -> Path:
    """Write the train and val splits under `root`; returns `root`.

    `images_per_class` maps a split to its count per class (default train 400, val 50).
    """
    counts = images_per_class or {"train": 400, "val": 50}
    unknown = set(classes) - set(SHAPE_CLASSES)
    if unknown:
        raise ValueError(f"unknown shape classes {sorted(unknown)}; expected some of {SHAPE_CLASSES}")
    root = Path(root)
    for split, per_class in counts.items():
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        index = 0
        for label, kind in enumerate(classes):
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_class):
                rng = np.random.default_rng([seed, SPLIT_IDS[split], label, index])
                cv2.imwrite(str(folder / f"{index:06d}.png"), draw_shape_image(rng, kind, size))
                index += 1
    return root
