"""float64 numpy references of Detectron's RetinaNet pieces, written loop by loop from
Detectron's semantics (generate_anchors, roi_data/retinanet.py, test_retinanet.py, the
SigmoidFocalLoss / SoftmaxFocalLoss / SelectSmoothL1Loss ops). Tests compare the
vectorised torch code against these; other test folders import this file by path.
"""

from __future__ import annotations

import math

import numpy as np


# ---- anchors ---------------------------------------------------------------------------------
def _whctrs(box):
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    return w, h, box[0] + 0.5 * (w - 1), box[1] + 0.5 * (h - 1)


def _box(w, h, cx, cy):
    return [cx - 0.5 * (w - 1), cy - 0.5 * (h - 1), cx + 0.5 * (w - 1), cy + 0.5 * (h - 1)]


def generate_anchors(stride: float, size: float, aspect_ratio: float) -> list[float]:
    """Detectron's generate_anchors for one size and one aspect ratio."""
    w, h, cx, cy = _whctrs([0.0, 0.0, stride - 1, stride - 1])
    ratio_w = np.round(math.sqrt(w * h / aspect_ratio))
    ratio_h = np.round(ratio_w * aspect_ratio)
    ratio_box = _box(ratio_w, ratio_h, cx, cy)
    w, h, cx, cy = _whctrs(ratio_box)
    scale = size / stride
    return _box(w * scale, h * scale, cx, cy)


def detectron_cell_anchors(level: int, anchor_scale: float, scales_per_octave: int, aspect_ratios) -> np.ndarray:
    """test_retinanet._create_cell_anchors for one level: [A, 4], octave major."""
    stride = 2.0**level
    cells = []
    for octave in range(scales_per_octave):
        octave_scale = 2 ** (octave / float(scales_per_octave))
        for aspect in aspect_ratios:
            cells.append(generate_anchors(stride, stride * octave_scale * anchor_scale, aspect))
    return np.array(cells, dtype=np.float64)


def field_of_anchors(cells: np.ndarray, stride: int, height: int, width: int) -> np.ndarray:
    """Cells shifted to every location, location-major then cell: [H * W * A, 4]."""
    rows = []
    for y in range(height):
        for x in range(width):
            for cell in cells:
                rows.append(cell + np.array([x * stride, y * stride, x * stride, y * stride]))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


# ---- boxes -----------------------------------------------------------------------------------
def iou_plus_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Detectron's bbox_overlaps (+1 widths), [len(a), len(b)]."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = min(p[2], q[2]) - max(p[0], q[0]) + 1
            ih = min(p[3], q[3]) - max(p[1], q[1]) + 1
            if iw > 0 and ih > 0:
                inter = iw * ih
                area_p = (p[2] - p[0] + 1) * (p[3] - p[1] + 1)
                area_q = (q[2] - q[0] + 1) * (q[3] - q[1] + 1)
                out[i, j] = inter / (area_p + area_q - inter)
    return out


def encode_plus_one(anchor, gt) -> list[float]:
    """bbox_transform_inv with weights (1, 1, 1, 1)."""
    aw, ah = anchor[2] - anchor[0] + 1, anchor[3] - anchor[1] + 1
    gw, gh = gt[2] - gt[0] + 1, gt[3] - gt[1] + 1
    acx, acy = anchor[0] + 0.5 * aw, anchor[1] + 0.5 * ah
    gcx, gcy = gt[0] + 0.5 * gw, gt[1] + 0.5 * gh
    return [(gcx - acx) / aw, (gcy - acy) / ah, math.log(gw / aw), math.log(gh / ah)]


def decode_plus_one(anchor, delta, clip: float = math.log(1000.0 / 16)) -> list[float]:
    """bbox_transform with weights (1, 1, 1, 1)."""
    w, h = anchor[2] - anchor[0] + 1, anchor[3] - anchor[1] + 1
    cx, cy = anchor[0] + 0.5 * w, anchor[1] + 0.5 * h
    pcx, pcy = delta[0] * w + cx, delta[1] * h + cy
    pw, ph = math.exp(min(delta[2], clip)) * w, math.exp(min(delta[3], clip)) * h
    return [pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw - 1, pcy + 0.5 * ph - 1]


def nms_plus_one(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> list[int]:
    """Greedy NMS with +1 areas (Detectron's box_utils.nms), kept indices by decreasing score."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(iou_plus_one(boxes[i : i + 1], boxes[k : k + 1])[0, 0] <= thresh for k in keep):
            keep.append(i)
    return keep


# ---- targets ---------------------------------------------------------------------------------
def detectron_retinanet_labels(anchors, gt_boxes, gt_classes, positive=0.5, negative=0.4):
    """_get_retinanet_blobs: (labels [R], bbox targets [R, 4] on final foreground, fg count).

    Literal: labels start at -1; every anchor tied for a gt's best IoU gets its own best gt's
    class; IoU >= positive gets its best gt's class; fg count is taken; IoU < negative -> 0.
    (Detectron also labels the anchors of a gt whose best IoU is 0; the torch code skips such
    gt boxes, which the tests avoid.)
    """
    num = len(anchors)
    labels = -np.ones(num)
    overlaps = iou_plus_one(anchors, gt_boxes)
    argmax = overlaps.argmax(axis=1)
    best = overlaps[np.arange(num), argmax]
    gt_best = overlaps.max(axis=0)
    for a in range(num):
        for g in range(len(gt_boxes)):
            if overlaps[a, g] == gt_best[g]:
                labels[a] = gt_classes[argmax[a]]
    for a in range(num):
        if best[a] >= positive:
            labels[a] = gt_classes[argmax[a]]
    num_fg = int((labels >= 1).sum())
    labels[best < negative] = 0
    targets = np.zeros((num, 4))
    for a in range(num):
        if labels[a] > 0:
            targets[a] = encode_plus_one(anchors[a], gt_boxes[argmax[a]])
    return labels, targets, num_fg


# ---- losses ----------------------------------------------------------------------------------
def sigmoid_focal_loss_sum(logits: np.ndarray, labels: np.ndarray, alpha: float, gamma: float, offset: int = 1):
    """Detectron's SigmoidFocalLoss summed: logit d is class d + offset (offset 0: torchvision's
    layout, logit 0 never positive); label 0 background, -1 ignored."""
    total = 0.0
    for row, label in zip(logits, labels):
        if label < 0:
            continue
        for d, x in enumerate(row):
            p = 1.0 / (1.0 + math.exp(-x))
            if label > 0 and label == d + offset:
                total += -alpha * (1 - p) ** gamma * math.log(p)
            else:
                total += -(1 - alpha) * p**gamma * math.log(1 - p)
    return total


def softmax_focal_loss_sum(logits: np.ndarray, labels: np.ndarray, alpha: float, gamma: float):
    """Detectron's SoftmaxFocalLoss summed: label 0 background (weight 1 - alpha), -1 ignored."""
    total = 0.0
    for row, label in zip(logits, labels):
        if label < 0:
            continue
        exp = np.exp(row - row.max())
        p = exp[int(label)] / exp.sum()
        weight = alpha if label > 0 else 1 - alpha
        total += -weight * (1 - p) ** gamma * math.log(p)
    return total


def smooth_l1_sum(pred: np.ndarray, target: np.ndarray, beta: float) -> float:
    total = 0.0
    for x in (pred - target).ravel():
        total += 0.5 * x * x / beta if abs(x) < beta else abs(x) - 0.5 * beta
    return total


# ---- inference -------------------------------------------------------------------------------
def detectron_detect(level_probs, level_deltas, level_anchors, scale, original_size, nms, th, pre_nms, limit):
    """test_retinanet.im_detect_bbox for one image.

    level_probs[l] [R_l, K] foreground class probabilities (rows location-major then anchor),
    level_deltas[l] [R_l, 4] or class-specific [R_l, 4K], level_anchors[l] [R_l, 4] in input
    pixels. Returns rows (x1, y1, x2, y2, score, class) sorted by decreasing score.
    """
    height, width = original_size
    per_class: dict[int, list] = {}
    last = len(level_probs) - 1
    for level, (probs, deltas, anchors) in enumerate(zip(level_probs, level_deltas, level_anchors)):
        thresh = th if level < last else 0.0
        candidates = [(probs[r, k], r, k) for r in range(probs.shape[0]) for k in range(probs.shape[1])]
        candidates = [c for c in candidates if c[0] > thresh]
        candidates.sort(key=lambda c: -c[0])
        for score, r, k in candidates[:pre_nms]:
            delta = deltas[r] if deltas.shape[1] == 4 else deltas[r, 4 * k : 4 * k + 4]
            box = np.array(decode_plus_one(anchors[r], delta)) / scale
            box[0::2] = np.clip(box[0::2], 0, width - 1)
            box[1::2] = np.clip(box[1::2], 0, height - 1)
            per_class.setdefault(k + 1, []).append((box, score))
    rows = []
    for cls, entries in per_class.items():
        boxes = np.array([e[0] for e in entries])
        scores = np.array([e[1] for e in entries])
        for i in nms_plus_one(boxes, scores, nms):
            rows.append([*boxes[i], scores[i], cls])
    rows.sort(key=lambda r: -r[4])
    return np.array(rows[:limit]).reshape(-1, 6)
