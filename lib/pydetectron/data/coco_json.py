"""COCO json -> cleaned `AnnotationTables`, vectorised, with Detectron's cleaning rules.

Cleaning, in Detectron's order (`JsonDataset._add_gt_annotations`): polygons with fewer
than 3 points are dropped; annotations with `area < gt_min_area` or `ignore == 1` are
dropped; `[x, y, w, h]` becomes `(x1, y1, x2, y2)` with `x2 = x1 + max(0, w - 1)`
(`plus_one=True`, Detectron) or `x2 = x1 + w`; boxes are clipped to the image; boxes
with `area <= 0`, `x2 <= x1` or `y2 <= y1` are dropped. Crowd annotations are kept
with `is_crowd`. Category ids map to contiguous 1..C in json order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter

import numpy as np

from pydetectron.data.annotation_tables import AnnotationTables, offsets_from_counts
from pydetectron.data.dataset_info import keypoint_flip_pairs
from pydetectron.data.string_table import StringTable
from pydetectron.structures.masks import compress_rle

logger = logging.getLogger(__name__)

_MISSING = object()


class DatasetFormatError(ValueError):
    """A COCO json lacks a required key or holds a value of the wrong form."""


@dataclass
class ParsedDataset:
    """The result of `parse_coco_json`."""

    classes: list[str]  # with '__background__' first
    json_category_ids: list[int]
    keypoint_names: list[str] | None
    keypoint_flip_pairs: list[tuple[int, int]]
    tables: AnnotationTables
    stats: CleaningStats


@dataclass
class CleaningStats:
    """How many annotations each cleaning rule touched (logged after a build)."""

    annotations_in: int = 0
    kept: int = 0
    crowd: int = 0
    dropped_small_area: int = 0
    dropped_ignore: int = 0
    dropped_degenerate: int = 0
    dropped_no_segmentation: int = 0
    clipped: int = 0
    invalid_polygons: int = 0
    extra: dict = field(default_factory=dict)

    def message(self, source: str) -> str:
        return (
            f"{source}: kept {self.kept}/{self.annotations_in} annotations "
            f"({self.crowd} crowd); dropped {self.dropped_small_area} below GT_MIN_AREA, "
            f"{self.dropped_ignore} marked ignore, {self.dropped_degenerate} degenerate boxes, "
            f"{self.dropped_no_segmentation} without a usable segmentation; clipped "
            f"{self.clipped} boxes to their image; removed {self.invalid_polygons} polygons "
            "with fewer than 3 points"
        )


def _record_name(section: str, index: int, record) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{section}[{index}]" + (f" (id {rid})" if rid is not None else "")


def _column(records: list, key: str, section: str, source: str, default=_MISSING) -> list:
    """`[r[key] for r in records]`, or an error naming the first record that lacks `key`."""
    try:  # map() over C-level callables: ~2x faster than a list comprehension at 1M records
        if default is _MISSING:
            return list(map(itemgetter(key), records))
        return list(map(dict.get, records, repeat(key), repeat(default)))
    except (KeyError, TypeError, AttributeError):
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise DatasetFormatError(
                    f"{source}: {section}[{i}] must be an object, got {type(record).__name__}"
                ) from None
            if key not in record:
                raise DatasetFormatError(
                    f"{source}: {_record_name(section, i, record)}: missing '{key}'"
                ) from None
        raise


def _numeric(values: list, key: str, section: str, records: list, source: str, width=None):
    """np.float64 array of `values`; on failure name the first malformed record."""
    try:
        if width is not None:  # flat fromiter beats np.array on a list of short lists
            lengths = np.fromiter(map(len, values), np.int64, count=len(values))
            if (lengths == width).all():
                flat = np.fromiter(
                    chain.from_iterable(values), np.float64, count=width * len(values)
                )
                return flat.reshape(len(values), width)
        array = np.array(values, dtype=np.float64)
        if width is None and array.ndim == 1:
            return array
        if width is not None and array.ndim == 2 and array.shape[1] == width:
            return array
        if width is not None and len(values) == 0:
            return array.reshape(0, width)
    except (ValueError, TypeError):
        pass
    for i, value in enumerate(values):
        try:
            item = np.array(value, dtype=np.float64)
        except (ValueError, TypeError):
            item = None
        wrong = item is None or (item.shape != (width,) if width else item.ndim != 0)
        if wrong:
            expected = f"a list of {width} numbers" if width else "a number"
            raise DatasetFormatError(
                f"{source}: {_record_name(section, i, records[i])}: '{key}' must be "
                f"{expected}, got {value!r:.80}"
            )
    raise DatasetFormatError(f"{source}: {section} '{key}' values are malformed")


def _lookup(sorted_keys: np.ndarray, order: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of each query in the unsorted key array (-1 where absent)."""
    if len(sorted_keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, queries).clip(0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == queries
    return np.where(found, order[pos], -1)


def _parse_categories(data: dict, source: str):
    if "categories" not in data:
        raise DatasetFormatError(f"{source}: missing top-level key 'categories'")
    cats = data["categories"]
    ids = np.array(_column(cats, "id", "categories", source), dtype=np.int64)
    names = [str(n) for n in _column(cats, "name", "categories", source)]
    if len(np.unique(ids)) != len(ids):
        raise DatasetFormatError(f"{source}: categories repeat an id")
    keypoint_names = None
    for i, cat in enumerate(cats):
        kps = cat.get("keypoints")
        if not kps:
            continue
        if keypoint_names is not None and list(kps) != keypoint_names:
            raise DatasetFormatError(
                f"{source}: {_record_name('categories', i, cat)} declares keypoints "
                f"{list(kps)}, different from another category's {keypoint_names}"
            )
        keypoint_names = [str(k) for k in kps]
    return ids, names, keypoint_names


def _parse_images(data: dict, source: str):
    if "images" not in data:
        raise DatasetFormatError(f"{source}: missing top-level key 'images'")
    images = data["images"]
    ids = np.array(_column(images, "id", "images", source), dtype=np.int64)
    widths = _numeric(_column(images, "width", "images", source), "width", "images", images, source)
    heights = _numeric(
        _column(images, "height", "images", source), "height", "images", images, source
    )
    files = _column(images, "file_name", "images", source)
    if len(np.unique(ids)) != len(ids):
        raise DatasetFormatError(f"{source}: images repeat an id")
    if len(ids) and (widths.min() <= 0 or heights.min() <= 0):
        bad = int(np.nonzero((widths <= 0) | (heights <= 0))[0][0])
        raise DatasetFormatError(
            f"{source}: {_record_name('images', bad, images[bad])}: width and height must be > 0"
        )
    order = np.argsort(ids, kind="stable")  # Detectron sorts images by id
    return (
        ids[order],
        widths[order].astype(np.int32),
        heights[order].astype(np.int32),
        StringTable.from_strings([files[i] for i in order]),
    )


def _parse_polygons(segs: list, anns: list, source: str):
    """Flatten the polygon segmentations; returns per-annotation polygon bookkeeping."""
    num = len(segs)
    codes = {type(None): 0, list: 1, dict: 2}  # 0 none, 1 polygons, 2 RLE, 3 anything else
    kind = np.fromiter(map(codes.get, map(type, segs), repeat(3)), np.int8, count=num)
    other = np.nonzero(kind == 3)[0]
    if len(other):
        i = int(other[0])
        raise DatasetFormatError(
            f"{source}: {_record_name('annotations', i, anns[i])}: 'segmentation' must be "
            f"a list of polygons or an RLE object, got {type(segs[i]).__name__}"
        )
    poly_anns = np.nonzero(kind == 1)[0]
    poly_segs = [segs[i] for i in poly_anns]
    per_ann = np.fromiter(map(len, poly_segs), np.int64, count=len(poly_segs))
    flat = list(chain.from_iterable(poly_segs))
    try:
        lengths = np.fromiter(map(len, flat), np.int64, count=len(flat))
    except TypeError:
        owner = np.repeat(poly_anns, per_ann)
        bad = next(j for j, p in enumerate(flat) if not isinstance(p, list))
        i = int(owner[bad])
        raise DatasetFormatError(
            f"{source}: {_record_name('annotations', i, anns[i])}: 'segmentation' must be a "
            "list of polygons (lists of x, y numbers)"
        ) from None
    owner = np.repeat(poly_anns, per_ann)
    valid = (lengths >= 6) & (lengths % 2 == 0)
    valid_per_ann = np.bincount(owner[valid], minlength=num)
    return kind, flat, lengths, owner, valid, valid_per_ann


def _raise_bad_polygon(polygons: list, owners: np.ndarray, anns: list, source: str):
    """Name the first annotation whose polygon holds something other than numbers."""
    for poly, i in zip(polygons, owners):
        try:
            np.array(poly, dtype=np.float32)
        except (TypeError, ValueError):
            raise DatasetFormatError(
                f"{source}: {_record_name('annotations', int(i), anns[i])}: polygon "
                f"coordinates must be numbers, got {poly!r:.80}"
            ) from None
    raise DatasetFormatError(f"{source}: malformed polygon coordinates")


def _parse_keypoints(anns: list, rows: np.ndarray, num_kps: int, source: str) -> np.ndarray:
    values = [anns[i].get("keypoints") for i in rows]
    expected = 3 * num_kps
    for j, value in enumerate(values):
        if value is None:
            values[j] = [0.0] * expected
        elif len(value) != expected:
            i = int(rows[j])
            raise DatasetFormatError(
                f"{source}: {_record_name('annotations', i, anns[i])}: 'keypoints' holds "
                f"{len(value)} numbers, expected {expected} (3 x {num_kps} keypoints)"
            )
    kps = np.array(values, dtype=np.float32).reshape(len(rows), num_kps, 3)
    return np.ascontiguousarray(kps.transpose(0, 2, 1))


def parse_coco_json(
    data: dict,
    *,
    source: str = "<json>",
    gt_min_area: float = -1.0,
    plus_one: bool = True,
    require_segms: bool = False,
) -> ParsedDataset:
    """Clean a loaded COCO dict.

    `require_segms` also drops annotations left without any polygon or RLE (for mask
    training). Raises `DatasetFormatError` naming the record and key of malformed input.
    """
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{source}: the top level must be an object")
    cat_ids, cat_names, keypoint_names = _parse_categories(data, source)
    image_ids, widths, heights, file_names = _parse_images(data, source)
    anns = data.get("annotations", [])
    stats = CleaningStats(annotations_in=len(anns))

    img_col = np.array(_column(anns, "image_id", "annotations", source), dtype=np.int64)
    cat_col = np.array(_column(anns, "category_id", "annotations", source), dtype=np.int64)
    bboxes = _numeric(
        _column(anns, "bbox", "annotations", source), "bbox", "annotations", anns, source, width=4
    )
    areas_in = _column(anns, "area", "annotations", source, default=None)
    crowd = np.array(_column(anns, "iscrowd", "annotations", source, default=0), dtype=bool)
    ignore = np.array(_column(anns, "ignore", "annotations", source, default=0), dtype=bool)
    ann_ids = np.array(_column(anns, "id", "annotations", source, default=-1), dtype=np.int64)
    segs = _column(anns, "segmentation", "annotations", source, default=None)

    image_row = _lookup(image_ids, np.arange(len(image_ids)), img_col)
    cat_order = np.argsort(cat_ids, kind="stable")
    cat_row = _lookup(cat_ids[cat_order], cat_order, cat_col)
    for column, rows, what in ((img_col, image_row, "image_id"), (cat_col, cat_row, "category_id")):
        if len(rows) and rows.min() < 0:
            i = int(np.nonzero(rows < 0)[0][0])
            raise DatasetFormatError(
                f"{source}: {_record_name('annotations', i, anns[i])}: {what} {int(column[i])} "
                f"is not in '{'images' if what == 'image_id' else 'categories'}'"
            )

    if None in areas_in:  # a missing area falls back to the box area
        areas_in = [a if a is not None else float(b[2] * b[3]) for a, b in zip(areas_in, bboxes)]
    areas = _numeric(areas_in, "area", "annotations", anns, source)

    kind, flat, lengths, owner, poly_valid, valid_per_ann = _parse_polygons(segs, anns, source)
    stats.invalid_polygons = int((~poly_valid).sum())

    # xywh -> xyxy and clipping, Detectron's xywh_to_xyxy / clip_xyxy_to_image.
    off = 1.0 if plus_one else 0.0
    x1, y1, w, h = bboxes.T
    x2 = x1 + np.maximum(0.0, w - off)
    y2 = y1 + np.maximum(0.0, h - off)
    im_w = widths[image_row].astype(np.float64) - off
    im_h = heights[image_row].astype(np.float64) - off
    raw = np.stack([x1, y1, x2, y2], axis=1)
    clipped = np.stack(
        [
            np.clip(x1, 0.0, im_w),
            np.clip(y1, 0.0, im_h),
            np.clip(x2, 0.0, im_w),
            np.clip(y2, 0.0, im_h),
        ],
        axis=1,
    )

    small = areas < gt_min_area
    ignored = ignore & ~small
    degenerate = ~(small | ignored) & ~(
        (areas > 0) & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    )
    keep = ~(small | ignored | degenerate)
    has_segm = ((kind == 1) & (valid_per_ann > 0)) | (kind == 2)
    no_segm = keep & ~has_segm if require_segms else np.zeros_like(keep)
    keep &= ~no_segm
    stats.dropped_small_area = int(small.sum())
    stats.dropped_ignore = int(ignored.sum())
    stats.dropped_degenerate = int(degenerate.sum())
    stats.dropped_no_segmentation = int(no_segm.sum())
    stats.clipped = int((keep & np.any(raw != clipped, axis=1)).sum())

    kept = np.nonzero(keep)[0]
    rows = kept[np.argsort(image_row[kept], kind="stable")]  # grouped per image, json order
    stats.kept = len(rows)
    stats.crowd = int(crowd[rows].sum())
    ann_counts = np.bincount(image_row[rows], minlength=len(image_ids))

    # Polygons of the kept annotations, in the new annotation order.
    new_pos = np.full(len(anns), -1, dtype=np.int64)
    new_pos[rows] = np.arange(len(rows))
    poly_sel = poly_valid & (new_pos[owner] >= 0) if len(owner) else poly_valid
    poly_rows = np.nonzero(poly_sel)[0]
    poly_rows = poly_rows[np.argsort(new_pos[owner[poly_rows]], kind="stable")]
    poly_lengths = lengths[poly_rows]
    selected = list(map(flat.__getitem__, poly_rows.tolist()))
    try:
        coords = np.fromiter(
            chain.from_iterable(selected), dtype=np.float32, count=int(poly_lengths.sum())
        )
    except (TypeError, ValueError):
        _raise_bad_polygon(selected, owner[poly_rows], anns, source)
    polys_per_new_ann = np.bincount(new_pos[owner[poly_rows]], minlength=len(rows))

    # RLE segmentations (mostly crowd regions), compressed.
    rle_rows = rows[kind[rows] == 2]
    rle_index = np.full(len(rows), -1, dtype=np.int32)
    rle_index[kind[rows] == 2] = np.arange(len(rle_rows), dtype=np.int32)
    rles = []
    for i in rle_rows:
        try:
            rles.append(compress_rle(segs[i]))
        except (ValueError, TypeError) as exc:
            raise DatasetFormatError(
                f"{source}: {_record_name('annotations', int(i), anns[i])}: bad RLE "
                f"segmentation ({exc})"
            ) from None

    keypoints = None
    if keypoint_names:
        keypoints = _parse_keypoints(anns, rows, len(keypoint_names), source)

    tables = AnnotationTables(
        image_ids=image_ids,
        widths=widths,
        heights=heights,
        file_names=file_names,
        ann_offsets=offsets_from_counts(ann_counts),
        boxes=clipped[rows].astype(np.float32),
        gt_classes=(cat_row[rows] + 1).astype(np.int32),
        is_crowd=crowd[rows],
        seg_areas=areas[rows].astype(np.float32),
        ann_ids=ann_ids[rows],
        keypoints=keypoints,
        poly_coords=coords,
        poly_offsets=offsets_from_counts(poly_lengths),
        ann_poly_offsets=offsets_from_counts(polys_per_new_ann),
        rle_index=rle_index,
        rle_counts=StringTable.from_strings([r["counts"] for r in rles]),
        rle_sizes=np.array([r["size"] for r in rles], dtype=np.int32).reshape(-1, 2),
    )
    return ParsedDataset(
        classes=["__background__"] + cat_names,
        json_category_ids=[int(i) for i in cat_ids],
        keypoint_names=keypoint_names,
        keypoint_flip_pairs=keypoint_flip_pairs(keypoint_names) if keypoint_names else [],
        tables=tables,
        stats=stats,
    )
