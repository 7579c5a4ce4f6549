"""Run a predictor over a range of a test roidb, one image at a time, never stopping on a bad image.

Loader workers read each image (and, without test-time augmentation, prepare the
network input with the predictor's transform); the main process runs the model. An
image that cannot be read or processed is logged with its file name, recorded as a
failure (no detections) and counted; the run goes on.

The predictor is duck-typed (no engine import): it needs `transform`,
`augmented`, `predict_prepared(list)` and `predict_augmented(image)`,
as `pydetectron.engine.predictor.Predictor` has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from torch.utils.data import DataLoader, Dataset

from pydetectron.data.loader import resolve_num_workers, worker_init
from pydetectron.data.roidb import Roidb
from pydetectron.data.transforms import read_image
from pydetectron.evaluation.coco_results import encode_masks
from pydetectron.evaluation.detection_store import ImageResult, RangeResult

logger = logging.getLogger(__name__)


class TestImages(Dataset):
    """Entries `indices` of a roidb: the BGR image, optionally prepared, or the read error."""

    def __init__(self, roidb: Roidb, indices: Sequence[int], prepare: Callable | None = None) -> None:
        self.roidb = roidb
        self.indices = list(indices)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict:
        index = self.indices[position]
        roidb = self.roidb
        row = int(roidb.entry_image[index])
        item = {
            "index": index,
            "image_id": int(roidb.tables.image_ids[row]),
            "path": roidb.image_path(index),
            "image": None,
            "prepared": None,
            "error": "",
        }
        try:
            expected = (int(roidb.tables.heights[row]), int(roidb.tables.widths[row]))
            item["image"] = read_image(item["path"], expected)
            if self.prepare is not None:
                item["prepared"] = self.prepare(item["image"])
        except Exception as error:  # reported by the main process, which goes on
            item["error"] = f"{type(error).__name__}: {error}"
        return item


def _single(batch: list[dict]) -> dict:
    return batch[0]


def prediction_to_result(index: int, image_id: int, prediction) -> ImageResult:
    """A predictor's output for one image -> what the range files store."""
    masks = prediction.masks
    return ImageResult(
        index=index,
        image_id=image_id,
        boxes=prediction.boxes,
        scores=prediction.scores,
        classes=prediction.classes,
        masks=encode_masks(masks) if masks is not None else None,
        keypoints=prediction.keypoints,
    )


def infer_range(
    predictor,
    roidb: Roidb,
    start: int,
    end: int,
    fingerprint: str,
    num_workers: int = 0,
    progress=None,
    on_image: Callable[[dict, object], None] | None = None,
) -> RangeResult:
    """Detections of roidb entries [start, end).

    `progress` (e.g. a tqdm bar) gets `update(1)` per image; `on_image(item, prediction)`
    is called for each image detected (e.g. to draw it).
    """
    num_workers = resolve_num_workers(num_workers)
    augmented = bool(predictor.augmented)
    dataset = TestImages(roidb, range(start, end), prepare=None if augmented else predictor.transform)
    extra = {"worker_init_fn": worker_init} if num_workers > 0 else {}
    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=_single, **extra)
    result = RangeResult(start, end, fingerprint)
    for item in loader:
        if not item["error"]:
            try:
                if augmented:
                    prediction = predictor.predict_augmented(item["image"])
                else:
                    prediction = predictor.predict_prepared([item["prepared"]])[0]
                result.images.append(prediction_to_result(item["index"], item["image_id"], prediction))
                if on_image is not None:
                    on_image(item, prediction)
            except Exception as error:  # one bad image never ends a long run
                item["error"] = f"{type(error).__name__}: {error}"
        if item["error"]:
            logger.warning("Skipping image '%s' (entry %d): %s", item["path"], item["index"], item["error"])
            result.images.append(ImageResult.failed(item["index"], item["image_id"], item["error"]))
        if progress is not None:
            progress.update(1)
    return result


def merge_ranges(ranges: Sequence[RangeResult], num_entries: int) -> list[ImageResult]:
    """The results of entries 0..num_entries-1, in order; raises naming missing/duplicate entries."""
    by_index: dict[int, ImageResult] = {}
    for part in ranges:
        for image in part.images:
            if image.index in by_index:
                raise ValueError(f"entry {image.index} appears in more than one detections range")
            by_index[image.index] = image
    missing = [i for i in range(num_entries) if i not in by_index]
    if missing:
        raise ValueError(f"{len(missing)} entries have no detections, e.g. {missing[:5]}")
    return [by_index[i] for i in range(num_entries)]
