"""Write a dataset's COCO result jsons and evaluate them against its ground truth.

File names follow Detectron: `bbox_<dataset>_results.json`,
`segmentations_<dataset>_results.json`, `keypoints_<dataset>_results.json`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydetectron.evaluation.coco_eval import evaluate_coco, has_annotations, load_coco_gt, write_json
from pydetectron.evaluation.coco_results import TASKS, detections_to_coco
from pydetectron.evaluation.detection_store import ImageResult

logger = logging.getLogger(__name__)

RESULT_FILES = {
    "bbox": "bbox_{}_results.json",
    "segm": "segmentations_{}_results.json",
    "keypoints": "keypoints_{}_results.json",
}


def coco_results(
    images: Sequence[ImageResult], contiguous_to_json: Mapping[int, int], plus_one: bool = True
) -> dict[str, list[dict]]:
    """COCO results per task; a task is present only when some image has its outputs."""
    out: dict[str, list[dict]] = {task: [] for task in TASKS}
    present = {"bbox"}
    for image in images:
        if image.masks is not None:
            present.add("segm")
        if image.keypoints is not None:
            present.add("keypoints")
        per_task = detections_to_coco(
            image.image_id,
            image.boxes,
            image.scores,
            image.classes,
            contiguous_to_json,
            plus_one,
            masks=image.masks,
            keypoints=image.keypoints,
        )
        for task, results in per_task.items():
            out[task].extend(results)
    return {task: out[task] for task in TASKS if task in present}


def evaluate_dataset(
    images: Sequence[ImageResult],
    dataset_name: str,
    json_file: str | os.PathLike,
    contiguous_to_json: Mapping[int, int],
    output_dir: str | os.PathLike,
    plus_one: bool = True,
    print_summary: bool = True,
) -> dict[str, dict[str, float]]:
    """Write the result jsons into `output_dir` and return {task: {metric: value}}.

    A json without annotations (e.g. test-dev) gets its result files but no metrics.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = coco_results(images, contiguous_to_json, plus_one)
    for task, task_results in results.items():
        path = output_dir / RESULT_FILES[task].format(dataset_name)
        write_json(path, task_results)
        logger.info("Wrote %d %s results to %s", len(task_results), task, path)
    coco_gt = load_coco_gt(json_file)
    if not has_annotations(coco_gt):
        logger.warning("%s has no annotations: results written, nothing evaluated", json_file)
        return {}
    return {task: evaluate_coco(coco_gt, task_results, task, print_summary) for task, task_results in results.items()}
