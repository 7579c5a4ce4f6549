"""The built-in shapes dataset: filled shapes on textured backgrounds, in COCO format.

Deterministic from a seed (image `i` draws from `default_rng([seed, i])`). Images are
160..320 px per side with varied aspect ratios; each holds 1-6 circles, squares,
triangles or stars 32..128 px across, in bright colours, overlapping a little (an
occluded shape's polygon is its visible outline). Some images hold a crowd region
(a cluster of small shapes annotated once, `iscrowd=1`, uncompressed RLE, as COCO).
The keypoint variant has one class, `triangle`, with keypoints top, left_corner,
right_corner and center (left/right swap under a flip).

Layout: `<root>/<name>/annotations.json` and `<root>/<name>/images/000001.jpg`, with
`<name>` one of shapes_train, shapes_val, keypoints_shapes_train, keypoints_shapes_val.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_util

from pydetectron.data.shapes_render import (
    SHAPE_CLASSES,
    bright_color,
    has_holes,
    paint,
    raster_polygons,
    shape_outline,
    textured_background,
)
from pydetectron.structures.masks import bitmap_to_polygons

logger = logging.getLogger(__name__)

KEYPOINT_CLASS = "triangle"
KEYPOINT_NAMES = ("top", "left_corner", "right_corner", "center")
KEYPOINT_SKELETON = [[1, 2], [2, 3], [3, 1], [1, 4]]
DEFAULT_NUM_IMAGES = {"train": 300, "val": 50}
DEFAULT_SEEDS = {
    ("shapes", "train"): 0,
    ("shapes", "val"): 1,
    ("keypoints_shapes", "train"): 2,
    ("keypoints_shapes", "val"): 3,
}
MIN_SHAPE, MAX_SHAPE = 32.0, 128.0
CROWD_PROBABILITY = 0.15
MIN_VISIBLE = 0.55  # an occluded shape keeps at least this fraction of its pixels
# Bumped whenever the generator draws differently: a dataset of another version is regenerated.
# 2: shapes are at least 32 px across (were 16), so most objects are COCO "medium" or larger.
GENERATOR_VERSION = 2


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a bitmap: column-major run lengths, zeros first."""
    flat = mask.astype(np.uint8).ravel(order="F")
    change = np.nonzero(np.diff(flat))[0] + 1
    bounds = np.concatenate([[0], change, [len(flat)]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


class _Canvas:
    """One image being drawn: pixels, the id of the shape owning each pixel, the shapes."""

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng = rng
        self.height, self.width = height, width
        self.image = textured_background(rng, height, width)
        self.owner = np.zeros((height, width), dtype=np.int16)
        self.shapes: list[dict] = []

    def try_place(self, mask: np.ndarray, shape: dict, color: np.ndarray) -> bool:
        """Paint `mask` on top unless it hides too much of a shape or punches a hole in it."""
        if mask.sum() == 0:
            return False
        for sid, other in enumerate(self.shapes, start=1):
            visible = (self.owner == sid) & (mask == 0)
            if visible.sum() < MIN_VISIBLE * other["pixels"]:
                return False
            if not other["crowd"] and visible.sum() < other["pixels"] and has_holes(visible):
                return False
        shape["pixels"] = int(mask.sum())
        shape["mask"] = mask
        self.shapes.append(shape)
        self.owner[mask > 0] = len(self.shapes)
        paint(self.image, mask, color, self.rng)
        return True


def _random_size(rng: np.random.Generator, height: int, width: int, lo=MIN_SHAPE, hi=MAX_SHAPE):
    hi = min(hi, 0.6 * min(height, width))
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _place_crowd(canvas: _Canvas) -> None:
    rng = canvas.rng
    kind = SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
    color = bright_color(rng)
    cx = rng.uniform(0.25, 0.75) * canvas.width
    cy = rng.uniform(0.25, 0.75) * canvas.height
    spread = rng.uniform(14, 30)
    parts = []
    for _ in range(int(rng.integers(6, 13))):
        x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread * 0.6)
        outline = shape_outline(kind, x, y, rng.uniform(7, 13), rng.uniform(0, 2 * np.pi))
        parts.append(np.round(outline, 2).ravel())
    mask = raster_polygons(parts, canvas.height, canvas.width)
    canvas.try_place(mask, {"kind": kind, "crowd": True}, color)


def _place_shape(canvas: _Canvas, keypoints: bool) -> None:
    rng = canvas.rng
    for _ in range(20):
        kind = KEYPOINT_CLASS if keypoints else SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
        size = _random_size(rng, canvas.height, canvas.width)
        angle = rng.uniform(-0.4, 0.4) if keypoints else rng.uniform(0, 2 * np.pi)
        cx = rng.uniform(0.3 * size, canvas.width - 0.3 * size)
        cy = rng.uniform(0.3 * size, canvas.height - 0.3 * size)
        outline = np.round(shape_outline(kind, cx, cy, size, angle), 2)
        mask = raster_polygons([outline.ravel()], canvas.height, canvas.width)
        if mask.sum() < 0.6 * _polygon_area(outline):  # mostly outside the image
            continue
        shape = {"kind": kind, "crowd": False, "outline": outline}
        if canvas.try_place(mask, shape, bright_color(rng)):
            return


def _polygon_area(outline: np.ndarray) -> float:
    x, y = outline[:, 0], outline[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _triangle_keypoints(canvas: _Canvas, sid: int, outline: np.ndarray) -> list[float]:
    top = int(np.argmin(outline[:, 1]))
    base = [i for i in range(3) if i != top]
    left, right = sorted(base, key=lambda i: outline[i, 0])
    points = [outline[top], outline[left], outline[right], outline.mean(axis=0)]
    values: list[float] = []
    for x, y in points:
        if not (0 <= x < canvas.width and 0 <= y < canvas.height):
            values += [0.0, 0.0, 0]
            continue
        xi, yi = int(x), int(y)
        window = canvas.owner[max(yi - 2, 0) : yi + 3, max(xi - 2, 0) : xi + 3]
        values += [round(float(x), 2), round(float(y), 2), 2 if (window == sid).any() else 1]
    return values


def _annotations(canvas: _Canvas, image_id: int, first_ann_id: int, keypoints: bool):
    anns = []
    for sid, shape in enumerate(canvas.shapes, start=1):
        visible = canvas.owner == sid
        if not visible.any():
            continue
        if shape["crowd"]:
            segmentation = uncompressed_rle(visible)
            rle = mask_util.frPyObjects(segmentation, canvas.height, canvas.width)
        else:
            if np.array_equal(visible, shape["mask"] > 0):
                polygons = [shape["outline"].ravel()]
            else:
                polygons = bitmap_to_polygons(visible)
            if not polygons:
                continue
            segmentation = [[round(float(v), 2) for v in p] for p in polygons]
            rle = mask_util.merge(mask_util.frPyObjects(segmentation, canvas.height, canvas.width))
        area = float(mask_util.area(rle))
        if area < 1:
            continue
        class_id = 1 if keypoints else SHAPE_CLASSES.index(shape["kind"]) + 1
        ann = {
            "id": first_ann_id + len(anns),
            "image_id": image_id,
            "category_id": class_id,
            "bbox": [round(float(v), 2) for v in mask_util.toBbox(rle)],
            "area": area,
            "iscrowd": int(shape["crowd"]),
            "segmentation": segmentation,
        }
        if keypoints:
            ann["keypoints"] = _triangle_keypoints(canvas, sid, shape["outline"])
            ann["num_keypoints"] = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        anns.append(ann)
    return anns


def render_shapes_image(
    seed: int, index: int, keypoints: bool = False, min_side: int = 160, max_side: int = 320
) -> tuple[np.ndarray, list[dict]]:
    """Image `index` of the dataset of `seed`: (BGR uint8 image, annotations without ids)."""
    rng = np.random.default_rng([seed, index])
    height = int(rng.integers(min_side, max_side + 1))
    width = int(rng.integers(min_side, max_side + 1))
    canvas = _Canvas(rng, height, width)
    if not keypoints and rng.random() < CROWD_PROBABILITY:
        _place_crowd(canvas)
    for _ in range(int(rng.integers(1, 4 if keypoints else 7))):
        _place_shape(canvas, keypoints)
    return canvas.image, _annotations(canvas, index + 1, 1, keypoints)


def shapes_categories(keypoints: bool) -> list[dict]:
    """The COCO `categories` list of the plain or the keypoint variant."""
    if keypoints:
        return [
            {
                "id": 1,
                "name": KEYPOINT_CLASS,
                "supercategory": "shape",
                "keypoints": list(KEYPOINT_NAMES),
                "skeleton": KEYPOINT_SKELETON,
            }
        ]
    return [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPE_CLASSES)]


def write_shapes_dataset(
    out_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    keypoints: bool = False,
    image_format: str = "jpg",
    min_side: int = 160,
    max_side: int = 320,
) -> Path:
    """Write `num_images` images + `annotations.json` into `out_dir`; returns the json path."""
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if not 16 <= min_side <= max_side:
        raise ValueError(f"need 16 <= min_side <= max_side, got {min_side}, {max_side}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 92] if image_format == "jpg" else []
    for index in range(num_images):
        image, anns = render_shapes_image(seed, index, keypoints, min_side, max_side)
        file_name = f"{index + 1:06d}.{image_format}"
        if not cv2.imwrite(str(out_dir / "images" / file_name), image, params):
            raise OSError(f"could not write image '{out_dir / 'images' / file_name}'")
        images.append(
            {
                "id": index + 1,
                "file_name": file_name,
                "height": image.shape[0],
                "width": image.shape[1],
            }
        )
        for ann in anns:
            ann["id"] = len(annotations) + 1
            annotations.append(ann)
    variant = "keypoints_shapes" if keypoints else "shapes"
    data = {
        "info": {"description": f"pydetectron {variant} dataset", "seed": seed, "version": GENERATOR_VERSION},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": shapes_categories(keypoints),
    }
    json_path = out_dir / "annotations.json"
    json_path.write_text(json.dumps(data))
    return json_path


def ensure_shapes_dataset(
    root: str | os.PathLike,
    split: str = "train",
    keypoints: bool = False,
    num_images: int | None = None,
    seed: int | None = None,
    image_format: str = "jpg",
) -> Path:
    """Generate `<root>/<variant>_<split>` unless present; returns its folder.

    Generation writes to a temporary folder then renames it, so concurrent callers
    (e.g. several training processes) never see a half-written dataset.
    """
    if split not in DEFAULT_NUM_IMAGES:
        raise ValueError(f"split must be one of {sorted(DEFAULT_NUM_IMAGES)}, got {split!r}")
    variant = "keypoints_shapes" if keypoints else "shapes"
    root = Path(root)
    out = root / f"{variant}_{split}"
    found = _generator_version(out / "annotations.json")
    if found == GENERATOR_VERSION:
        return out
    if found is not None:
        logger.info("%s was drawn by shapes generator version %s; regenerating with version %d", out, found,
                    GENERATOR_VERSION)  # fmt: skip
    num_images = DEFAULT_NUM_IMAGES[split] if num_images is None else num_images
    seed = DEFAULT_SEEDS[(variant, split)] if seed is None else seed
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{out.name}.tmp{os.getpid()}"
    logger.info("Generating %s (%d images, seed %d) in %s", out.name, num_images, seed, out)
    write_shapes_dataset(tmp, num_images, seed, keypoints, image_format)
    if found is not None:  # move the outdated dataset aside first: rename() will not replace a folder
        old = root / f".{out.name}.old{os.getpid()}"
        try:
            os.rename(out, old)
        except OSError:
            pass  # another process moved it already
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
        if _generator_version(out / "annotations.json") != GENERATOR_VERSION:
            raise
    return out


def _generator_version(json_path: Path) -> int | None:
    """The generator version recorded in a shapes json; None when there is no file.

    A json this generator did not write (or cannot be read) counts as current: it is never
    replaced, as before versions were recorded.
    """
    if not json_path.is_file():
        return None
    try:
        with open(json_path) as handle:
            info = json.load(handle).get("info", {})
    except (OSError, ValueError, AttributeError):
        return GENERATOR_VERSION
    if not str(info.get("description", "")).startswith("pydetectron"):
        return GENERATOR_VERSION
    return info.get("version", GENERATOR_VERSION)
