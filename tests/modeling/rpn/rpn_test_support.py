"""Helpers shared by the RPN tests: a greedy float64 reference NMS (independent of the ops)."""

import numpy as np
import torch


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, plus_one: bool) -> torch.Tensor:
    """Greedy NMS in float64: indices kept, by decreasing score."""
    off = 1.0 if plus_one else 0.0
    b = boxes.double().cpu()
    areas = (b[:, 2] - b[:, 0] + off) * (b[:, 3] - b[:, 1] + off)
    w = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0]) + off).clamp(min=0)
    h = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1]) + off).clamp(min=0)
    inter = w * h
    iou = inter / (areas[:, None] + areas[None, :] - inter)
    overlaps = (iou > iou_threshold).numpy()
    order = torch.sort(scores.cpu(), descending=True, stable=True).indices.tolist()
    suppressed = np.zeros(b.shape[0], dtype=bool)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return torch.tensor(keep, dtype=torch.int64)


def reference_batched_nms(boxes, scores, groups, iou_threshold, plus_one):
    """Greedy NMS within each group; indices kept, by decreasing score."""
    kept = []
    for group in torch.unique(groups).tolist():
        index = torch.nonzero(groups == group, as_tuple=False).squeeze(1)
        kept.append(index[reference_nms(boxes[index], scores[index], iou_threshold, plus_one)])
    kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.int64)
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]
