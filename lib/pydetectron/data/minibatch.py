"""Training/test samples from a roidb and the collate that pads them into a minibatch.

A sample is addressed by a `SampleKey` (entry index, scale index, seed) chosen by the
sampler, so every random choice (scale, crop window) is fixed by the sampler's seed
and position, whatever the number of loader workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from pydetectron.data.cropping import crop_targets, crop_window
from pydetectron.data.roidb import Roidb
from pydetectron.data.targets import ImageTargets
from pydetectron.data.transforms import (
    ImageReadError,
    images_to_batch,
    prepare_image,
    read_image,
    to_chw_tensor,
)
from pydetectron.structures.masks import (
    bitmap_to_polygons,
    polygons_to_bitmap,
    resize_bitmap,
    rle_to_bitmap,
)

logger = logging.getLogger(__name__)

MASK_FORMATS = (None, "polygon", "bitmap")
MAX_REPLACEMENTS = 10


class SampleKey(NamedTuple):
    """Which entry to load and the random choices for it."""

    index: int
    scale_index: int = 0
    seed: int = 0


class RoidbDataset(Dataset):
    """Map-style dataset turning roidb entries into network inputs and targets.

    Each item is a dict: `image` float32 [3, h, w] (normalised, resized, not padded),
    `im_info` float32 [3] = (h, w, scale), `targets` (see `ImageTargets.to_tensors`;
    absent when `with_targets` is False), `index`, `image_id`, `flipped`.
    """

    def __init__(
        self,
        roidb: Roidb,
        scales: Sequence[int],
        max_size: int,
        pixel_means: Sequence[float],
        pixel_stds: Sequence[float] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
        mask_format: str | None = None,
        keypoints: bool = False,
        aspect_cropping: bool = False,
        aspect_lo: float = 0.5,
        aspect_hi: float = 2.0,
        skip_missing: bool = False,
        with_targets: bool = True,
        resize: str = "detectron",
    ):
        if mask_format not in MASK_FORMATS:
            raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")
        if not scales:
            raise ValueError("scales must hold at least one target size")
        if keypoints and roidb.tables.keypoints is None:
            raise ValueError(f"keypoints requested but dataset '{roidb.info.name}' has none")
        if aspect_cropping and not 0 < aspect_lo <= 1 <= aspect_hi:
            raise ValueError(f"need 0 < aspect_lo <= 1 <= aspect_hi, got {aspect_lo}, {aspect_hi}")
        self.roidb = roidb
        self.scales = tuple(scales)
        self.max_size = max_size
        self.pixel_means = tuple(float(v) for v in pixel_means)
        self.pixel_stds = tuple(float(v) for v in pixel_stds)
        self.input_format = input_format
        self.mask_format = mask_format
        self.keypoints = keypoints
        self.aspect_cropping = aspect_cropping
        self.aspect_lo, self.aspect_hi = aspect_lo, aspect_hi
        self.skip_missing = skip_missing
        self.with_targets = with_targets
        self.resize = resize
        self._landscape = roidb.widths >= roidb.heights

    def __len__(self) -> int:
        return len(self.roidb)

    def __getitem__(self, key) -> dict:
        key = _as_key(key)
        try:
            return self._load(key.index, key)
        except ImageReadError as exc:
            if not self.skip_missing:
                hint = "set DATA_LOADER.SKIP_MISSING_IMAGES True to skip unreadable images" if self.with_targets else ""
                raise ImageReadError(f"{exc}; {hint}" if hint else str(exc)) from None
            return self._replacement(key, exc)

    def _replacement(self, key: SampleKey, error: ImageReadError) -> dict:
        """Another entry of the same orientation, chosen from the key's seed.

        The sample lists what was skipped under 'skipped' (the loader counts them).
        """
        logger.warning("Skipping entry %d: %s", key.index, error)
        skipped = [str(error)]
        rng = np.random.default_rng([key.seed, key.index, 1])
        same = np.nonzero(self._landscape == self._landscape[key.index])[0]
        for _ in range(MAX_REPLACEMENTS):
            index = int(same[rng.integers(len(same))])
            try:
                sample = self._load(index, key)
                sample["skipped"] = skipped
                return sample
            except ImageReadError as exc:
                logger.warning("Skipping entry %d: %s", index, exc)
                skipped.append(str(exc))
        raise ImageReadError(
            f"{MAX_REPLACEMENTS} replacement images in a row could not be read (last: {error})"
        )

    def _load(self, index: int, key: SampleKey) -> dict:
        roidb = self.roidb
        row = int(roidb.entry_image[index])
        height, width = int(roidb.tables.heights[row]), int(roidb.tables.widths[row])
        flipped = bool(roidb.entry_flipped[index])
        raw = read_image(roidb.image_path(index), (height, width))
        image, scale = prepare_image(
            raw,
            self.scales[key.scale_index % len(self.scales)],
            self.max_size,
            self.pixel_means,
            self.pixel_stds,
            self.input_format,
            flip=flipped,
            resize=self.resize,
        )
        out_h, out_w = image.shape[:2]
        sample = {"index": index, "image_id": int(roidb.tables.image_ids[row]), "flipped": flipped}
        targets = self._targets(index, scale, out_h, out_w) if self.with_targets else None
        if self.aspect_cropping:
            boxes = targets.boxes if targets is not None else np.zeros((0, 4), np.float32)
            rng = np.random.default_rng([key.seed, index, 2])
            window = crop_window(out_h, out_w, boxes, self.aspect_lo, self.aspect_hi, rng)
            if window is not None:
                x0, y0, w, h = window
                image = image[y0 : y0 + h, x0 : x0 + w]
                out_h, out_w = h, w
                if targets is not None:
                    targets = crop_targets(targets, window, roidb.plus_one)
        sample["image"] = to_chw_tensor(image)
        sample["im_info"] = torch.tensor([out_h, out_w, scale], dtype=torch.float32)
        if targets is not None:
            sample["targets"] = targets.to_tensors()
        return sample

    def _targets(self, index: int, scale: float, out_h: int, out_w: int) -> ImageTargets:
        entry = self.roidb.entry(index, with_segms=self.mask_format is not None)
        keypoints = None
        if self.keypoints:
            keypoints = np.ascontiguousarray(entry["gt_keypoints"].transpose(0, 2, 1))
        targets = ImageTargets(
            boxes=entry["boxes"],
            gt_classes=entry["gt_classes"].astype(np.int64),
            is_crowd=entry["is_crowd"],
            keypoints=keypoints,
        )
        if self.mask_format is not None:
            targets.polygons = [self._as_polygons(s) for s in entry["segms"]]
        targets = targets.scaled(scale)
        if self.mask_format == "bitmap":
            targets.bitmaps = self._bitmaps(entry["segms"], targets.polygons, out_h, out_w)
            targets.polygons = None
        return targets

    @staticmethod
    def _as_polygons(segm) -> list[np.ndarray]:
        """Polygons of a segmentation; an RLE becomes the outlines of its decoded mask."""
        if isinstance(segm, dict):
            return bitmap_to_polygons(rle_to_bitmap(segm))
        return list(segm)

    @staticmethod
    def _bitmaps(segms: list, scaled_polygons: list, out_h: int, out_w: int) -> np.ndarray:
        bitmaps = np.zeros((len(segms), out_h, out_w), dtype=np.uint8)
        for i, segm in enumerate(segms):
            if isinstance(segm, dict):
                bitmaps[i] = resize_bitmap(rle_to_bitmap(segm), out_h, out_w)
            else:
                bitmaps[i] = polygons_to_bitmap(scaled_polygons[i], out_h, out_w)
        return bitmaps


def _as_key(key) -> SampleKey:
    if isinstance(key, SampleKey):
        return key
    if isinstance(key, (int, np.integer)):
        return SampleKey(int(key))
    return SampleKey(*key)


def collate_minibatch(samples: Sequence[dict], size_divisibility: int = 0) -> dict:
    """Pad samples into a batch.

    Returns `data` float32 [N, 3, H, W] (zero padded, H and W multiples of
    `size_divisibility` when > 0), `im_info` float32 [N, 3] (h, w, scale of each image
    before padding), `image_ids` int64 [N], `indices` int64 [N], `flipped` bool [N],
    `targets` (a list of per-image dicts) when the samples carry targets, and `skipped`
    (messages naming the unreadable images replaced by others) when there were any.
    """
    batch = {
        "data": images_to_batch([s["image"] for s in samples], size_divisibility),
        "im_info": torch.stack([s["im_info"] for s in samples]),
        "image_ids": torch.tensor([s["image_id"] for s in samples], dtype=torch.int64),
        "indices": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "flipped": torch.tensor([s["flipped"] for s in samples], dtype=torch.bool),
    }
    if all("targets" in s for s in samples):
        batch["targets"] = [s["targets"] for s in samples]
    skipped = [message for s in samples for message in s.get("skipped", ())]
    if skipped:
        batch["skipped"] = skipped
    return batch
