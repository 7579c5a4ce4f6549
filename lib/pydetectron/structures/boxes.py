"""Box arithmetic on [N, 4] (x1, y1, x2, y2) tensors, vectorised torch.

Two conventions run through every function here as the explicit `plus_one` switch:
Detectron's legacy one (`plus_one=True`: a box covering pixels x1..x2 is x2 - x1 + 1 wide,
boxes clip to [0, W - 1]) and torchvision's (`plus_one=False`: width x2 - x1, clip to
[0, W]).
"""

from __future__ import annotations

import math

import torch

# Detectron's cap on predicted log-scale deltas: exp(dw) never exceeds 1000/16.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _offset(plus_one: bool) -> float:
    return 1.0 if plus_one else 0.0


def check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    """Raise ValueError unless `boxes` is a floating [N, 4] tensor."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, 4], got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")


def box_area(boxes: torch.Tensor, plus_one: bool = False) -> torch.Tensor:
    """Area of each box ([N])."""
    check_boxes(boxes)
    off = _offset(plus_one)
    return (boxes[:, 2] - boxes[:, 0] + off) * (boxes[:, 3] - boxes[:, 1] + off)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, plus_one: bool = False) -> torch.Tensor:
    """Pairwise intersection over union, [N, M]."""
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    off = _offset(plus_one)
    area1 = box_area(boxes1, plus_one)
    area2 = box_area(boxes2, plus_one)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left + off).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def encode_boxes(
    reference: torch.Tensor,
    targets: torch.Tensor,
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    plus_one: bool = False,
) -> torch.Tensor:
    """Regression deltas (dx, dy, dw, dh) that turn `reference` boxes into `targets` ([N, 4])."""
    check_boxes(reference, "reference")
    check_boxes(targets, "targets")
    off = _offset(plus_one)
    wx, wy, ww, wh = weights
    ref_w = reference[:, 2] - reference[:, 0] + off
    ref_h = reference[:, 3] - reference[:, 1] + off
    ref_cx = reference[:, 0] + 0.5 * ref_w
    ref_cy = reference[:, 1] + 0.5 * ref_h
    gt_w = targets[:, 2] - targets[:, 0] + off
    gt_h = targets[:, 3] - targets[:, 1] + off
    gt_cx = targets[:, 0] + 0.5 * gt_w
    gt_cy = targets[:, 1] + 0.5 * gt_h
    return torch.stack(
        (
            wx * (gt_cx - ref_cx) / ref_w,
            wy * (gt_cy - ref_cy) / ref_h,
            ww * torch.log(gt_w / ref_w),
            wh * torch.log(gt_h / ref_h),
        ),
        dim=1,
    )


def decode_boxes(
    reference: torch.Tensor,
    deltas: torch.Tensor,
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    plus_one: bool = False,
    scale_clamp: float = DEFAULT_SCALE_CLAMP,
) -> torch.Tensor:
    """Apply deltas [N, 4*C] to reference boxes [N, 4]; returns boxes [N, 4*C].

    The inverse of `encode_boxes`; with `plus_one` the far corner is ctr + w/2 - 1 as in
    Detectron's bbox_transform.
    """
    check_boxes(reference, "reference")
    if deltas.dim() != 2 or deltas.shape[1] % 4 != 0 or deltas.shape[0] != reference.shape[0]:
        raise ValueError(
            f"deltas must have shape [N, 4*C] with N = {reference.shape[0]}, got {tuple(deltas.shape)}"
        )
    if reference.shape[0] == 0:
        return deltas.clone()
    reference = reference.to(deltas.dtype)
    off = _offset(plus_one)
    wx, wy, ww, wh = weights
    widths = (reference[:, 2] - reference[:, 0] + off)[:, None]
    heights = (reference[:, 3] - reference[:, 1] + off)[:, None]
    ctr_x = reference[:, 0, None] + 0.5 * widths
    ctr_y = reference[:, 1, None] + 0.5 * heights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = (deltas[:, 2::4] / ww).clamp(max=scale_clamp)
    dh = (deltas[:, 3::4] / wh).clamp(max=scale_clamp)
    pred_cx = dx * widths + ctr_x
    pred_cy = dy * heights + ctr_y
    pred_w = torch.exp(dw) * widths
    pred_h = torch.exp(dh) * heights
    out = torch.stack(
        (
            pred_cx - 0.5 * pred_w,
            pred_cy - 0.5 * pred_h,
            pred_cx + 0.5 * pred_w - off,
            pred_cy + 0.5 * pred_h - off,
        ),
        dim=2,
    )
    return out.reshape(deltas.shape)


def clip_boxes(boxes: torch.Tensor, height: float, width: float, plus_one: bool = False) -> torch.Tensor:
    """Clip boxes [N, 4*C] to an image of (height, width)."""
    if boxes.dim() != 2 or boxes.shape[1] % 4 != 0:
        raise ValueError(f"boxes must have shape [N, 4*C], got {tuple(boxes.shape)}")
    off = _offset(plus_one)
    x = boxes[:, 0::2].clamp(min=0, max=width - off)
    y = boxes[:, 1::2].clamp(min=0, max=height - off)
    return torch.stack((x, y), dim=2).reshape(boxes.shape)


def nonempty_box_mask(boxes: torch.Tensor, min_size: float = 0.0, plus_one: bool = False) -> torch.Tensor:
    """Boolean [N]: boxes whose width and height are both >= min_size (and positive)."""
    check_boxes(boxes)
    off = _offset(plus_one)
    ws = boxes[:, 2] - boxes[:, 0] + off
    hs = boxes[:, 3] - boxes[:, 1] + off
    keep = (ws > 0) & (hs > 0)
    if min_size > 0:
        keep &= (ws >= min_size) & (hs >= min_size)
    return keep


def flip_boxes(boxes: torch.Tensor, width: float, plus_one: bool = False) -> torch.Tensor:
    """Mirror boxes [N, 4k] (k boxes per row, e.g. class-specific) horizontally in an image
    of the given width (Detectron's x -> width - 1 - x with `plus_one`)."""
    if boxes.dim() != 2 or boxes.shape[1] % 4 != 0:
        raise ValueError(f"boxes must have shape [N, 4k], got {tuple(boxes.shape)}")
    off = _offset(plus_one)
    flipped = boxes.clone()
    flipped[:, 0::4] = width - off - boxes[:, 2::4]
    flipped[:, 2::4] = width - off - boxes[:, 0::4]
    return flipped
