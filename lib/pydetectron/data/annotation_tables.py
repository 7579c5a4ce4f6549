"""Column store of a cleaned COCO dataset: one row per image, one row per annotation.

Why columns: 100k images / 800k annotations fit in a few flat numpy arrays (no
per-image dicts), build with vectorised numpy, save to `.npz` without pickle, and
are shared copy-on-write by forked loader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pydetectron.data.string_table import StringTable


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """[n] counts -> [n + 1] int64 offsets starting at 0."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def gather_segments(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray):
    """Concatenate the segments `values[offsets[r]:offsets[r+1]]` for `rows`, vectorised.

    Returns (gathered values, new offsets).
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = offsets_from_counts(lengths)
    index = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return values[index], new_offsets


@dataclass
class AnnotationTables:
    """Images sorted by id; their annotations contiguous, in json order within an image.

    Boxes are (x1, y1, x2, y2) after cleaning; keypoints are Detectron's [A, 3, K]
    (x, y, visibility). Annotation `a` owns polygons
    `ann_poly_offsets[a]:ann_poly_offsets[a+1]`, polygon `p` owns coordinates
    `poly_offsets[p]:poly_offsets[p+1]`; `rle_index[a]` is its row in `rle_counts`
    (compressed counts) / `rle_sizes`, or -1.
    """

    image_ids: np.ndarray  # int64 [I]
    widths: np.ndarray  # int32 [I]
    heights: np.ndarray  # int32 [I]
    file_names: StringTable  # [I]
    ann_offsets: np.ndarray  # int64 [I + 1]
    boxes: np.ndarray  # float32 [A, 4]
    gt_classes: np.ndarray  # int32 [A]
    is_crowd: np.ndarray  # bool [A]
    seg_areas: np.ndarray  # float32 [A]
    ann_ids: np.ndarray  # int64 [A]
    keypoints: np.ndarray | None  # float32 [A, 3, K]
    poly_coords: np.ndarray  # float32 [C]
    poly_offsets: np.ndarray  # int64 [P + 1]
    ann_poly_offsets: np.ndarray  # int64 [A + 1]
    rle_index: np.ndarray  # int32 [A]
    rle_counts: StringTable  # [R]
    rle_sizes: np.ndarray  # int32 [R, 2]

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_annotations(self) -> int:
        return len(self.boxes)

    def ann_image_index(self) -> np.ndarray:
        """Image row of each annotation ([A] int64)."""
        counts = np.diff(self.ann_offsets)
        return np.repeat(np.arange(self.num_images, dtype=np.int64), counts)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array dict for `np.savez` (no object arrays)."""
        arrays = {
            "image_ids": self.image_ids,
            "widths": self.widths,
            "heights": self.heights,
            "file_names_data": self.file_names.data,
            "file_names_offsets": self.file_names.offsets,
            "ann_offsets": self.ann_offsets,
            "boxes": self.boxes,
            "gt_classes": self.gt_classes,
            "is_crowd": self.is_crowd,
            "seg_areas": self.seg_areas,
            "ann_ids": self.ann_ids,
            "poly_coords": self.poly_coords,
            "poly_offsets": self.poly_offsets,
            "ann_poly_offsets": self.ann_poly_offsets,
            "rle_index": self.rle_index,
            "rle_counts_data": self.rle_counts.data,
            "rle_counts_offsets": self.rle_counts.offsets,
            "rle_sizes": self.rle_sizes,
        }
        if self.keypoints is not None:
            arrays["keypoints"] = self.keypoints
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> AnnotationTables:
        """Inverse of `to_arrays` (accepts an `np.load` result)."""
        return cls(
            image_ids=arrays["image_ids"],
            widths=arrays["widths"],
            heights=arrays["heights"],
            file_names=StringTable(arrays["file_names_data"], arrays["file_names_offsets"]),
            ann_offsets=arrays["ann_offsets"],
            boxes=arrays["boxes"],
            gt_classes=arrays["gt_classes"],
            is_crowd=arrays["is_crowd"],
            seg_areas=arrays["seg_areas"],
            ann_ids=arrays["ann_ids"],
            keypoints=arrays["keypoints"] if "keypoints" in arrays else None,
            poly_coords=arrays["poly_coords"],
            poly_offsets=arrays["poly_offsets"],
            ann_poly_offsets=arrays["ann_poly_offsets"],
            rle_index=arrays["rle_index"],
            rle_counts=StringTable(arrays["rle_counts_data"], arrays["rle_counts_offsets"]),
            rle_sizes=arrays["rle_sizes"],
        )

    @classmethod
    def concatenate(cls, tables: Sequence[AnnotationTables]) -> AnnotationTables:
        """Stack several datasets' tables (image ids may repeat across datasets)."""
        if len(tables) == 1:
            return tables[0]
        with_kps = [t.keypoints is not None for t in tables]
        if any(with_kps) and not all(with_kps):
            raise ValueError("cannot combine datasets with and without keypoints")

        def stack_offsets(name: str) -> np.ndarray:
            parts = [np.zeros(1, dtype=np.int64)]
            base = 0
            for table in tables:
                offsets = getattr(table, name)
                parts.append(offsets[1:] + base)
                base += int(offsets[-1])
            return np.concatenate(parts)

        rle_parts = []
        base = 0
        for table in tables:
            rle_parts.append(np.where(table.rle_index >= 0, table.rle_index + base, -1))
            base += len(table.rle_sizes)
        return cls(
            image_ids=np.concatenate([t.image_ids for t in tables]),
            widths=np.concatenate([t.widths for t in tables]),
            heights=np.concatenate([t.heights for t in tables]),
            file_names=StringTable.concatenate([t.file_names for t in tables]),
            ann_offsets=stack_offsets("ann_offsets"),
            boxes=np.concatenate([t.boxes for t in tables]),
            gt_classes=np.concatenate([t.gt_classes for t in tables]),
            is_crowd=np.concatenate([t.is_crowd for t in tables]),
            seg_areas=np.concatenate([t.seg_areas for t in tables]),
            ann_ids=np.concatenate([t.ann_ids for t in tables]),
            keypoints=np.concatenate([t.keypoints for t in tables]) if all(with_kps) else None,
            poly_coords=np.concatenate([t.poly_coords for t in tables]),
            poly_offsets=stack_offsets("poly_offsets"),
            ann_poly_offsets=stack_offsets("ann_poly_offsets"),
            rle_index=np.concatenate(rle_parts).astype(np.int32),
            rle_counts=StringTable.concatenate([t.rle_counts for t in tables]),
            rle_sizes=np.concatenate([t.rle_sizes for t in tables]),
        )
