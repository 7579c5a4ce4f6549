"""Detectron-style detection pictures drawn with OpenCV.

`vis_one_image` draws, on a copy of a BGR image, every detection scoring at least
`thresh`: translucent masks with white outlines, a green box, a "class score" label,
and keypoint skeletons. Detections are drawn largest first so small ones stay visible.
Keypoints are `[K, 3]` rows of (x, y, score); a keypoint or limb is drawn when its
scores exceed `kp_thresh` (Detectron compares heatmap logits, default 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pydetectron.utils.class_names import COCO_KEYPOINT_NAMES, class_label

BOX_COLOR = (18, 127, 15)  # BGR green, Detectron's
TEXT_COLOR = (218, 227, 218)
WHITE = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX

# COCO person limbs (Detectron's kp_connections); the neck and spine are added from the
# shoulder and hip midpoints.
COCO_LIMBS: tuple[tuple[str, str], ...] = (
    ("left_eye", "right_eye"),
    ("left_eye", "nose"),
    ("right_eye", "nose"),
    ("right_eye", "right_ear"),
    ("left_eye", "left_ear"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_shoulder", "left_shoulder"),
    ("right_hip", "left_hip"),
)


def colormap(count: int) -> np.ndarray:
    """[count, 3] uint8 BGR colours, bright and far apart in hue (golden-ratio steps)."""
    hues = (np.arange(count) * 0.618033988749895 % 1.0 * 179).astype(np.uint8)
    sats = np.where(np.arange(count) % 2 == 0, 200, 255).astype(np.uint8)
    hsv = np.stack([hues, sats, np.full(count, 230, np.uint8)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def rainbow(count: int) -> np.ndarray:
    """[count, 3] uint8 BGR colours from red to violet (limb colours)."""
    hues = np.linspace(0, 150, max(count, 1)).astype(np.uint8)[:count]
    hsv = np.stack([hues, np.full(count, 255, np.uint8), np.full(count, 255, np.uint8)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def keypoint_limbs(
    keypoint_names: Sequence[str] | None, skeleton: Sequence[Sequence[int]] | None = None
) -> list[tuple[int, int]]:
    """0-based keypoint index pairs to join with lines.

    `skeleton` is a COCO `skeleton` (1-based pairs) and wins when given; COCO's person
    keypoints get Detectron's limbs; anything else gets no lines (points only).
    """
    if skeleton:
        return [(int(a) - 1, int(b) - 1) for a, b in skeleton]
    if keypoint_names is None:
        return []
    index = {name: i for i, name in enumerate(keypoint_names)}
    return [(index[a], index[b]) for a, b in COCO_LIMBS if a in index and b in index]


def _is_coco_person(keypoint_names: Sequence[str] | None) -> bool:
    return keypoint_names is not None and tuple(keypoint_names) == COCO_KEYPOINT_NAMES


def draw_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: Sequence[int],
    alpha: float = 0.4,
    border_color: Sequence[int] = WHITE,
    border_thickness: int = 1,
) -> np.ndarray:
    """Blend `color` into the pixels of a boolean HxW `mask` and outline it (in place)."""
    mask = np.asarray(mask).astype(bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the image {image.shape[:2]}")
    if not mask.any():
        return image
    tint = np.asarray(color, dtype=np.float32)
    region = image[mask].astype(np.float32)
    image[mask] = np.clip(region * (1.0 - alpha) + tint * alpha, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, tuple(int(c) for c in border_color), border_thickness, cv2.LINE_AA)
    return image


def draw_box(image: np.ndarray, box: Sequence[float], color=BOX_COLOR, thickness: int = 1) -> np.ndarray:
    """Rectangle for an xyxy box (in place)."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box[:4])
    cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness=thickness)
    return image


def draw_label(image: np.ndarray, x: float, y: float, text: str, font_scale: float = 0.35) -> np.ndarray:
    """Text on a filled box whose bottom-left corner is (x, y), moved inside the image (in place)."""
    (text_w, text_h), _ = cv2.getTextSize(text, FONT, font_scale, 1)
    height, width = image.shape[:2]
    x0 = int(min(max(x, 0), max(width - text_w, 0)))
    y0 = int(y)
    if y0 - int(1.3 * text_h) < 0:  # no room above the box: put the label inside it
        y0 = int(1.3 * text_h)
    cv2.rectangle(image, (x0, y0 - int(1.3 * text_h)), (x0 + text_w, y0), BOX_COLOR, -1)
    cv2.putText(image, text, (x0, y0 - int(0.3 * text_h)), FONT, font_scale, TEXT_COLOR, lineType=cv2.LINE_AA)
    return image


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    limbs: Sequence[tuple[int, int]],
    kp_thresh: float = 2.0,
    alpha: float = 0.7,
    coco_person: bool = False,
) -> np.ndarray:
    """Skeleton of one instance, `keypoints` [K, 3] = (x, y, score), blended with `alpha` (in place)."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise ValueError(f"keypoints must be [K, 3] (x, y, score), got shape {keypoints.shape}")
    overlay = image.copy()
    colors = [tuple(int(c) for c in col) for col in rainbow(len(limbs) + 2)]
    points = [(int(round(float(x))), int(round(float(y)))) for x, y, _ in keypoints]
    visible = keypoints[:, 2] > kp_thresh
    if coco_person:
        index = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}
        ls, rs, lh, rh, nose = (index[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "nose"))
        mid_shoulder = (keypoints[rs, :2] + keypoints[ls, :2]) / 2.0
        mid_hip = (keypoints[rh, :2] + keypoints[lh, :2]) / 2.0
        shoulders_seen = min(keypoints[rs, 2], keypoints[ls, 2]) > kp_thresh
        hips_seen = min(keypoints[rh, 2], keypoints[lh, 2]) > kp_thresh
        ms = (int(round(float(mid_shoulder[0]))), int(round(float(mid_shoulder[1]))))
        mh = (int(round(float(mid_hip[0]))), int(round(float(mid_hip[1]))))
        if shoulders_seen and visible[nose]:
            cv2.line(overlay, ms, points[nose], colors[len(limbs)], 2, cv2.LINE_AA)
        if shoulders_seen and hips_seen:
            cv2.line(overlay, ms, mh, colors[len(limbs) + 1], 2, cv2.LINE_AA)
    for (a, b), color in zip(limbs, colors):
        if visible[a] and visible[b]:
            cv2.line(overlay, points[a], points[b], color, 2, cv2.LINE_AA)
    for i, point in enumerate(points):
        if visible[i]:
            cv2.circle(overlay, point, 3, colors[i % len(colors)], -1, cv2.LINE_AA)
    cv2.addWeighted(overlay, alpha, image, 1.0 - alpha, 0, dst=image)
    return image


def vis_one_image(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str] | None = None,
    masks: np.ndarray | None = None,
    keypoints: np.ndarray | None = None,
    keypoint_names: Sequence[str] | None = None,
    skeleton: Sequence[Sequence[int]] | None = None,
    thresh: float = 0.9,
    kp_thresh: float = 2.0,
    show_class: bool = True,
) -> np.ndarray:
    """A copy of BGR `image` with the detections scoring >= `thresh` drawn on it.

    boxes [N, 4] xyxy image pixels, scores [N], classes [N] (1-based), masks [N, H, W]
    bool, keypoints [N, K, 3]; `skeleton` is a COCO skeleton (1-based pairs).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"vis_one_image needs an HxWx3 uint8 BGR image, got {image.dtype} {tuple(image.shape)}")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(f"boxes ({len(boxes)}), scores ({len(scores)}) and classes ({len(classes)}) differ in length")
    for name, extra in (("masks", masks), ("keypoints", keypoints)):
        if extra is not None and len(extra) != len(boxes):
            raise ValueError(f"{name} has {len(extra)} entries for {len(boxes)} boxes")
    out = image.copy()
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = [i for i in np.argsort(-areas, kind="stable") if scores[i] >= thresh]
    mask_colors = colormap(max(len(order), 1))
    limbs = keypoint_limbs(keypoint_names, skeleton) if keypoints is not None else []
    coco_person = skeleton is None and _is_coco_person(keypoint_names)
    for rank, i in enumerate(order):
        if masks is not None:
            draw_mask(out, masks[i], mask_colors[rank % len(mask_colors)])
        draw_box(out, boxes[i])
        if show_class:
            name = class_label(class_names, int(classes[i])) if class_names is not None else str(int(classes[i]))
            draw_label(out, boxes[i, 0], boxes[i, 1] - 2, f"{name} {scores[i]:0.2f}")
        if keypoints is not None:
            draw_keypoints(out, keypoints[i], limbs, kp_thresh, coco_person=coco_person)
    return out
