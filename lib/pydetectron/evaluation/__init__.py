"""COCO-style evaluation: result jsons, box / mask / keypoint AP, resumable per-range detections."""

from pydetectron.evaluation.coco_eval import METRIC_NAMES, evaluate_coco, load_coco_gt, run_cocoeval
from pydetectron.evaluation.coco_results import TASKS, detections_to_coco, encode_masks, xyxy_to_xywh
from pydetectron.evaluation.dataset_eval import coco_results, evaluate_dataset
from pydetectron.evaluation.dataset_inference import infer_range, merge_ranges
from pydetectron.evaluation.detection_store import (
    ImageResult,
    RangeResult,
    find_ranges,
    fingerprint,
    load_range,
    plan_ranges,
    save_range,
)

__all__ = [
    "METRIC_NAMES",
    "TASKS",
    "ImageResult",
    "RangeResult",
    "coco_results",
    "detections_to_coco",
    "encode_masks",
    "evaluate_coco",
    "evaluate_dataset",
    "find_ranges",
    "fingerprint",
    "infer_range",
    "load_coco_gt",
    "load_range",
    "merge_ranges",
    "plan_ranges",
    "run_cocoeval",
    "save_range",
    "xyxy_to_xywh",
]
