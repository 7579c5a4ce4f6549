"""The roidb: a list of training/test entries over columnar annotation tables.

`Roidb` behaves like Detectron's list of dicts (`len(roidb)`, `roidb[i]` gives the
entry dict with Detectron's field names) but stores one row per entry pointing at a
shared image row, plus a `flipped` flag. Flipped copies therefore cost two small
arrays; their boxes, polygons, RLE and keypoints are mirrored when an entry is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from pydetectron.data.annotation_tables import AnnotationTables
from pydetectron.data.dataset_info import DatasetInfo
from pydetectron.structures.boxes import flip_boxes
from pydetectron.structures.masks import flip_polygons, flip_rle


def flip_boxes_xyxy(boxes: np.ndarray, width: int, plus_one: bool) -> np.ndarray:
    """Mirror [N, 4] xyxy boxes left-right (x -> width - 1 - x with Detectron's +1)."""
    if len(boxes) == 0:
        return boxes.copy()
    return flip_boxes(torch.from_numpy(np.ascontiguousarray(boxes)), width, plus_one).numpy()


def flip_keypoints(
    keypoints: np.ndarray, flip_pairs: Sequence[tuple[int, int]], width: int, plus_one: bool
) -> np.ndarray:
    """Mirror Detectron-layout [N, 3, K] keypoints; swaps left/right pairs.

    As Detectron, x of an unlabeled keypoint (v == 0) stays 0.
    """
    off = 1.0 if plus_one else 0.0
    out = keypoints.copy()
    for left, right in flip_pairs:
        out[:, :, left] = keypoints[:, :, right]
        out[:, :, right] = keypoints[:, :, left]
    out[:, 0, :] = width - out[:, 0, :] - off
    out[:, 0, :][out[:, 2, :] == 0] = 0
    return out


class Roidb:
    """Entries (image row + flipped flag) over `AnnotationTables` of one or more datasets."""

    def __init__(
        self,
        infos: Sequence[DatasetInfo],
        tables: AnnotationTables,
        image_dataset: np.ndarray,
        entry_image: np.ndarray | None = None,
        entry_flipped: np.ndarray | None = None,
        plus_one: bool = True,
    ):
        self.infos = list(infos)
        self.tables = tables
        self.image_dataset = np.asarray(image_dataset, dtype=np.int32)
        if entry_image is None:
            entry_image = np.arange(tables.num_images, dtype=np.int64)
        if entry_flipped is None:
            entry_flipped = np.zeros(len(entry_image), dtype=bool)
        self.entry_image = np.asarray(entry_image, dtype=np.int64)
        self.entry_flipped = np.asarray(entry_flipped, dtype=bool)
        self.plus_one = plus_one
        if len(self.image_dataset) != tables.num_images:
            raise ValueError("image_dataset must give one dataset index per image row")
        if self.entry_image.shape != self.entry_flipped.shape:
            raise ValueError("entry_image and entry_flipped must have the same length")

    # ---- dataset-level metadata ---------------------------------------------------
    @property
    def info(self) -> DatasetInfo:
        """The first dataset's metadata (all combined datasets share classes)."""
        return self.infos[0]

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    # ---- per-entry arrays -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entry_image)

    @property
    def widths(self) -> np.ndarray:
        return self.tables.widths[self.entry_image]

    @property
    def heights(self) -> np.ndarray:
        return self.tables.heights[self.entry_image]

    @property
    def aspect_ratios(self) -> np.ndarray:
        """width / height of each entry (float64)."""
        return self.widths.astype(np.float64) / self.heights

    @property
    def image_ids(self) -> np.ndarray:
        return self.tables.image_ids[self.entry_image]

    def num_boxes(self, include_crowd: bool = False) -> np.ndarray:
        """Number of ground-truth boxes of each entry (non-crowd unless asked)."""
        tables = self.tables
        weights = None if include_crowd else (~tables.is_crowd).astype(np.int64)
        per_image = np.bincount(
            tables.ann_image_index(), weights=weights, minlength=tables.num_images
        )
        return per_image.astype(np.int64)[self.entry_image]

    def has_visible_keypoints(self) -> np.ndarray:
        """Whether each entry has a keypoint with visibility > 0 (False without keypoints)."""
        tables = self.tables
        if tables.keypoints is None:
            return np.zeros(len(self), dtype=bool)
        visible = (tables.keypoints[:, 2, :] > 0).any(axis=1)
        per_image = np.bincount(
            tables.ann_image_index(), weights=visible, minlength=tables.num_images
        )
        return (per_image > 0)[self.entry_image]

    def image_path(self, index: int) -> str:
        """Full path of the image of entry `index`."""
        row = int(self.entry_image[index])
        info = self.infos[int(self.image_dataset[row])]
        return os.path.join(info.image_dir, info.image_prefix + self.tables.file_names[row])

    # ---- subsets and combinations -----------------------------------------------------
    def select(self, entries: np.ndarray) -> Roidb:
        """A roidb holding only `entries` (indices or a boolean mask), sharing the tables."""
        entries = np.asarray(entries)
        if entries.dtype == bool:
            entries = np.nonzero(entries)[0]
        return Roidb(
            self.infos,
            self.tables,
            self.image_dataset,
            self.entry_image[entries],
            self.entry_flipped[entries],
            self.plus_one,
        )

    def with_flipped(self) -> Roidb:
        """This roidb followed by a horizontally flipped copy of every entry (Detectron)."""
        return Roidb(
            self.infos,
            self.tables,
            self.image_dataset,
            np.concatenate([self.entry_image, self.entry_image]),
            np.concatenate([self.entry_flipped, ~self.entry_flipped]),
            self.plus_one,
        )

    @staticmethod
    def concatenate(roidbs: Sequence[Roidb]) -> Roidb:
        """Entries of all `roidbs` in order; their datasets must share classes."""
        first = roidbs[0]
        for other in roidbs[1:]:
            if not first.info.same_classes_as(other.info):
                raise ValueError(
                    f"cannot combine datasets '{first.info.name}' and '{other.info.name}': "
                    "their categories (or keypoints) differ"
                )
            if other.plus_one != first.plus_one:
                raise ValueError("cannot combine roidbs built with different plus_one")
        if len(roidbs) == 1:
            return first
        infos, image_dataset, entry_image, flipped = [], [], [], []
        image_base = 0
        for roidb in roidbs:
            image_dataset.append(roidb.image_dataset + len(infos))
            infos.extend(roidb.infos)
            entry_image.append(roidb.entry_image + image_base)
            flipped.append(roidb.entry_flipped)
            image_base += roidb.tables.num_images
        tables = AnnotationTables.concatenate([r.tables for r in roidbs])
        return Roidb(
            infos,
            tables,
            np.concatenate(image_dataset),
            np.concatenate(entry_image),
            np.concatenate(flipped),
            first.plus_one,
        )

    # ---- reading one entry ------------------------------------------------------------
    def annotation_rows(self, index: int) -> tuple[int, int]:
        """[start, end) of entry `index`'s annotations in the tables."""
        row = int(self.entry_image[index])
        return int(self.tables.ann_offsets[row]), int(self.tables.ann_offsets[row + 1])

    def segms(self, index: int) -> list:
        """Segmentations of entry `index`: per annotation a polygon list, an RLE dict or []."""
        tables = self.tables
        start, end = self.annotation_rows(index)
        width = int(self.tables.widths[self.entry_image[index]])
        flipped = bool(self.entry_flipped[index])
        out = []
        for ann in range(start, end):
            rle_row = int(tables.rle_index[ann])
            if rle_row >= 0:
                rle = {
                    "size": [int(v) for v in tables.rle_sizes[rle_row]],
                    "counts": tables.rle_counts.get_bytes(rle_row),
                }
                out.append(flip_rle(rle) if flipped else rle)
                continue
            p0, p1 = tables.ann_poly_offsets[ann], tables.ann_poly_offsets[ann + 1]
            polys = [
                tables.poly_coords[tables.poly_offsets[p] : tables.poly_offsets[p + 1]]
                for p in range(p0, p1)
            ]
            out.append(flip_polygons(polys, width, self.plus_one) if flipped else polys)
        return out

    def entry(self, index: int, with_segms: bool = True) -> dict:
        """Entry `index` as Detectron's roidb dict (boxes etc. mirrored when flipped)."""
        tables = self.tables
        if index < 0:
            index += len(self)
        row = int(self.entry_image[index])
        start, end = self.annotation_rows(index)
        width, height = int(tables.widths[row]), int(tables.heights[row])
        flipped = bool(self.entry_flipped[index])
        boxes = tables.boxes[start:end].copy()
        if flipped:
            boxes = flip_boxes_xyxy(boxes, width, self.plus_one)
        gt_classes = tables.gt_classes[start:end].copy()
        is_crowd = tables.is_crowd[start:end].copy()
        num = end - start
        overlaps = np.zeros((num, self.num_classes), dtype=np.float32)
        overlaps[np.arange(num), gt_classes] = 1.0
        overlaps[is_crowd] = -1.0
        info = self.infos[int(self.image_dataset[row])]
        entry = {
            "id": int(tables.image_ids[row]),
            "image": self.image_path(index),
            "width": width,
            "height": height,
            "flipped": flipped,
            "dataset_name": info.name,
            "boxes": boxes,
            "gt_classes": gt_classes,
            "is_crowd": is_crowd,
            "seg_areas": tables.seg_areas[start:end].copy(),
            "ann_ids": tables.ann_ids[start:end].copy(),
            "gt_overlaps": overlaps,
            "max_overlaps": overlaps.max(axis=1) if num else np.zeros(0, np.float32),
            "max_classes": overlaps.argmax(axis=1) if num else np.zeros(0, np.int64),
            "box_to_gt_ind_map": np.arange(num, dtype=np.int32),
            "has_visible_keypoints": False,
        }
        if tables.keypoints is not None:
            kps = tables.keypoints[start:end].copy()
            if flipped:
                kps = flip_keypoints(kps, info.keypoint_flip_pairs, width, self.plus_one)
            entry["gt_keypoints"] = kps
            entry["has_visible_keypoints"] = bool((kps[:, 2, :] > 0).any())
        if with_segms:
            entry["segms"] = self.segms(index)
        return entry

    def __getitem__(self, index: int) -> dict:
        return self.entry(index)

    def __iter__(self):
        for i in range(len(self)):
            yield self.entry(i)
