"""Box / mask / keypoint AP with pycocotools' COCOeval, as Detectron's json_dataset_evaluator.

Every image of the ground truth is evaluated (an image without detections counts as
misses). An empty result list is evaluated too (AP 0 where there is ground truth),
instead of failing inside `COCO.loadRes`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

logger = logging.getLogger(__name__)

METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "bbox": ("AP", "AP50", "AP75", "APs", "APm", "APl"),
    "segm": ("AP", "AP50", "AP75", "APs", "APm", "APl"),
    "keypoints": ("AP", "AP50", "AP75", "APm", "APl"),
}
COCO_KEYPOINT_OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0


def load_coco_gt(json_file: str | os.PathLike) -> COCO:
    """pycocotools' COCO object of a ground-truth json (its progress prints go to the log)."""
    json_file = os.fspath(json_file)
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"ground-truth annotation file '{json_file}' not found")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        coco = COCO(json_file)
    logger.debug(printed.getvalue().strip())
    return coco


def has_annotations(coco_gt: COCO) -> bool:
    """False for image-info-only jsons (test-dev), which cannot be evaluated locally."""
    return bool(coco_gt.dataset.get("annotations"))


def results_to_coco(coco_gt: COCO, results: Sequence[dict]) -> COCO:
    """The results as a COCO object over the ground truth's images and categories."""
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            return coco_gt.loadRes([dict(r) for r in results])  # loadRes adds keys: copy
    empty = COCO()
    empty.dataset = {
        "images": list(coco_gt.dataset.get("images", [])),
        "categories": list(coco_gt.dataset.get("categories", [])),
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        empty.createIndex()
    return empty


def keypoint_sigmas(coco_gt: COCO) -> np.ndarray:
    """COCO's OKS sigmas for 17 keypoints; for another count, their mean for every keypoint."""
    counts = {len(c.get("keypoints", [])) for c in coco_gt.dataset.get("categories", []) if c.get("keypoints")}
    num = counts.pop() if len(counts) == 1 else len(COCO_KEYPOINT_OKS_SIGMAS)
    if num == len(COCO_KEYPOINT_OKS_SIGMAS):
        return COCO_KEYPOINT_OKS_SIGMAS
    return np.full(num, COCO_KEYPOINT_OKS_SIGMAS.mean())


def run_cocoeval(coco_gt: COCO, results: Sequence[dict], iou_type: str, print_summary: bool = True) -> COCOeval:
    """Evaluated, accumulated and summarised COCOeval (the standard table printed when asked)."""
    if iou_type not in METRIC_NAMES:
        raise ValueError(f"iou_type must be one of {tuple(METRIC_NAMES)}, got {iou_type!r}")
    coco_dt = results_to_coco(coco_gt, results)
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.imgIds = sorted(coco_gt.getImgIds())
    if iou_type == "keypoints":
        evaluator.params.kpt_oks_sigmas = keypoint_sigmas(coco_gt)
        # only categories with keypoints (pycocotools needs 'num_keypoints' on every ground truth)
        evaluator.params.catIds = sorted(c["id"] for c in coco_gt.dataset.get("categories", []) if c.get("keypoints"))
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    if print_summary:
        print(f"Evaluate annotation type *{iou_type}* ({len(results)} results)")
        evaluator.summarize()
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.summarize()
    return evaluator


def evaluate_coco(
    coco_gt: COCO, results: Sequence[dict], iou_type: str, print_summary: bool = True
) -> dict[str, float]:
    """{'AP': ..., 'AP50': ..., ...} of one task (AP in [0, 1]; -1 where no ground truth)."""
    evaluator = run_cocoeval(coco_gt, results, iou_type, print_summary)
    return {name: float(evaluator.stats[i]) for i, name in enumerate(METRIC_NAMES[iou_type])}


def write_json(path: str | os.PathLike, data) -> None:
    """JSON to `path` through a temporary file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
