"""Soft-NMS and box voting (Detectron's TEST.SOFT_NMS and TEST.BBOX_VOTE), in torch.

Both act on the detections of one class of one image: boxes [N, 4] and scores [N].
"""

from __future__ import annotations

import torch

from pydetectron.structures.boxes import box_iou

SOFT_NMS_METHODS = ("hard", "linear", "gaussian")
VOTE_SCORING_METHODS = ("ID", "TEMP_AVG", "AVG", "IOU_AVG", "GENERALIZED_AVG", "QUASI_SUM")


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    sigma: float = 0.5,
    overlap_thresh: float = 0.3,
    score_thresh: float = 0.001,
    method: str = "linear",
    plus_one: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS (Bodla et al.): decay the scores of boxes overlapping a kept box.

    Returns (kept indices into `boxes` in selection order, their decayed scores). 'linear'
    multiplies by (1 - IoU) above `overlap_thresh`, 'gaussian' by exp(-IoU^2 / sigma),
    'hard' drops them (classic NMS).
    Boxes whose score falls below `score_thresh` are dropped.
    """
    if method not in SOFT_NMS_METHODS:
        raise ValueError(f"soft_nms method must be one of {SOFT_NMS_METHODS}, got {method!r}")
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device), scores.new_empty(0)
    iou = box_iou(boxes, boxes, plus_one=plus_one)
    current = scores.clone()
    alive = torch.ones(n, dtype=torch.bool, device=boxes.device)
    keep: list[torch.Tensor] = []
    kept_scores: list[torch.Tensor] = []
    for _ in range(n):
        masked = torch.where(alive, current, current.new_full((), -1.0))
        best = torch.argmax(masked)
        if not bool(alive[best]):
            break
        keep.append(best)
        kept_scores.append(current[best])
        alive[best] = False
        overlap = iou[best]
        if method == "hard":
            decay = (overlap <= overlap_thresh).to(current.dtype)
        elif method == "linear":
            decay = torch.where(overlap > overlap_thresh, 1.0 - overlap, torch.ones_like(overlap))
        else:
            decay = torch.exp(-(overlap * overlap) / sigma)
        current = torch.where(alive, current * decay, current)
        alive &= current >= score_thresh
    return torch.stack(keep), torch.stack(kept_scores)


def box_voting(
    top_boxes: torch.Tensor,
    top_scores: torch.Tensor,
    all_boxes: torch.Tensor,
    all_scores: torch.Tensor,
    thresh: float,
    scoring_method: str = "ID",
    beta: float = 1.0,
    plus_one: bool = True,
    top_classes: torch.Tensor | None = None,
    all_classes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine each kept box as the score-weighted mean of all boxes with IoU >= thresh.

    With `top_classes` / `all_classes`, only boxes of the kept box's own class vote.

    The score is kept ('ID') or recomputed from the voters as Detectron's scoring methods
    do. Returns (boxes [K, 4], scores [K]).
    """
    if scoring_method not in VOTE_SCORING_METHODS:
        raise ValueError(f"box voting scoring_method must be one of {VOTE_SCORING_METHODS}, got {scoring_method!r}")
    if top_boxes.shape[0] == 0:
        return top_boxes.clone(), top_scores.clone()
    iou = box_iou(top_boxes, all_boxes, plus_one=plus_one)
    same_box = iou >= thresh
    if top_classes is not None and all_classes is not None:
        same_box &= top_classes[:, None] == all_classes[None, :]
    voters = same_box.to(all_scores.dtype)
    weights = voters * all_scores[None, :]
    boxes = (weights @ all_boxes) / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
    count = voters.sum(dim=1).clamp(min=1)
    if scoring_method == "ID":
        scores = top_scores.clone()
    elif scoring_method == "TEMP_AVG":
        # two-way softmax of (p, 1 - p) at temperature beta, averaged over the voters
        pos = all_scores.clamp(min=1e-12).pow(1.0 / beta)
        neg = (1.0 - all_scores).clamp(min=1e-12).pow(1.0 / beta)
        probs = pos / (pos + neg)
        scores = (voters * probs[None, :]).sum(dim=1) / count
    elif scoring_method == "AVG":
        scores = weights.sum(dim=1) / count
    elif scoring_method == "IOU_AVG":
        w = voters * iou
        scores = (w * all_scores[None, :]).sum(dim=1) / w.sum(dim=1).clamp(min=1e-12)
    elif scoring_method == "GENERALIZED_AVG":
        scores = torch.log((voters * all_scores[None, :].pow(beta)).sum(dim=1) / count) / beta
        scores = torch.exp(scores)
    else:  # QUASI_SUM
        scores = weights.sum(dim=1) / count.pow(beta)
    return boxes, scores
