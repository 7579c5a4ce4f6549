"""Detections -> COCO result dicts (`bbox`, `segm`, `keypoints`), as Detectron writes them.

Boxes become [x, y, w, h] with Detectron's +1 width when `plus_one` (w = x2 - x1 + 1);
contiguous class ids are mapped back to the dataset's json category ids; masks become
compressed RLE with string counts; keypoints become COCO's flat [x, y, v] list with
v = 1 and the detection's score (Detectron's KRCNN.KEYPOINT_CONFIDENCE 'bbox').
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pycocotools import mask as mask_util

TASKS = ("bbox", "segm", "keypoints")


def xyxy_to_xywh(boxes: np.ndarray, plus_one: bool) -> np.ndarray:
    """[N, 4] (x1, y1, x2, y2) -> (x, y, w, h)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    offset = 1.0 if plus_one else 0.0
    out = boxes.copy()
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2] + offset
    return out


def encode_masks(masks: np.ndarray) -> list[dict]:
    """[N, H, W] boolean masks -> COCO compressed RLEs with str counts (JSON-ready)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {masks.shape}")
    if len(masks) == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def _json_category(contiguous_to_json: Mapping[int, int], class_id: int) -> int:
    if class_id not in contiguous_to_json:
        raise ValueError(
            f"detection class {class_id} has no json category (the dataset has contiguous ids "
            f"{min(contiguous_to_json, default=0)}..{max(contiguous_to_json, default=0)}); "
            "does MODEL.NUM_CLASSES match the dataset?"
        )
    return int(contiguous_to_json[class_id])


def detections_to_coco(
    image_id: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    contiguous_to_json: Mapping[int, int],
    plus_one: bool = True,
    masks=None,
    keypoints: np.ndarray | None = None,
) -> dict[str, list[dict]]:
    """COCO results of one image per task; `masks` are [N, H, W] bool or N RLE dicts,
    `keypoints` [N, K, 3] (x, y, score). Tasks without inputs get empty lists."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(
            f"image {image_id}: {len(boxes)} boxes, {len(scores)} scores and {len(classes)} classes differ"
        )
    categories = [_json_category(contiguous_to_json, int(c)) for c in classes]
    xywh = xyxy_to_xywh(boxes, plus_one)
    out: dict[str, list[dict]] = {task: [] for task in TASKS}
    for i in range(len(boxes)):
        out["bbox"].append(
            {
                "image_id": int(image_id),
                "category_id": categories[i],
                "bbox": [float(v) for v in xywh[i]],
                "score": float(scores[i]),
            }
        )
    if masks is not None:
        rles = masks if isinstance(masks, list) else encode_masks(masks)
        if len(rles) != len(boxes):
            raise ValueError(f"image {image_id}: {len(rles)} masks for {len(boxes)} boxes")
        for i, rle in enumerate(rles):
            out["segm"].append(
                {
                    "image_id": int(image_id),
                    "category_id": categories[i],
                    "segmentation": rle,
                    "score": float(scores[i]),
                }
            )
    if keypoints is not None:
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[0] != len(boxes) or keypoints.shape[2] != 3:
            raise ValueError(f"image {image_id}: keypoints must be [{len(boxes)}, K, 3], got {keypoints.shape}")
        for i in range(len(boxes)):
            flat = np.concatenate([keypoints[i, :, :2], np.ones((keypoints.shape[1], 1))], axis=1).reshape(-1)
            out["keypoints"].append(
                {
                    "image_id": int(image_id),
                    "category_id": categories[i],
                    "keypoints": [float(v) for v in flat],
                    "score": float(scores[i]),
                }
            )
    return out
