"""Non-maximum suppression: `nms` and per-class `batched_nms` on the compiled kernels."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from ._checks import (
    check_floating,
    check_same_device,
    check_same_dtype,
    check_tensor,
)
from ._library import OPS


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, plus_one: bool = False) -> Tensor:
    """Greedy NMS: indices of the kept boxes, sorted by decreasing score.

    A box is dropped when its IoU with a kept, higher-scoring box is > `iou_threshold`.
    `boxes` is [N, 4] (x1, y1, x2, y2), `scores` is [N]. `plus_one=True` measures widths
    as x2 - x1 + 1 (the Detectron convention); the default is torchvision's. float16 and
    bfloat16 boxes are compared in float32 (on CPU and CUDA).
    """
    _check_nms_args(boxes, scores, iou_threshold, plus_one, "nms")
    return OPS.nms(boxes, scores, float(iou_threshold), plus_one)


def batched_nms(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, plus_one: bool = False
) -> Tensor:
    """NMS within each category of `idxs` [N]; kept indices sorted by decreasing score.

    Boxes of different categories are never compared: the kernels group the boxes by
    category (or, on CUDA with up to 25k boxes, test the category next to the IoU), so
    the result is that of one `nms` per category whatever N, the ids (any int64) and
    the coordinates (a NaN or infinite box affects only its own category).
    """
    op = "batched_nms"
    _check_nms_args(boxes, scores, iou_threshold, plus_one, op)
    check_tensor(idxs, "idxs", op)
    if idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{op}: idxs must be a [N] tensor with N = {boxes.shape[0]} (one per box), "
            f"got shape {tuple(idxs.shape)}"
        )
    if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
        raise TypeError(f"{op}: idxs must be an integer tensor, got {idxs.dtype}")
    check_same_device(boxes, idxs, ("boxes", "idxs"), op)
    return OPS.batched_nms(boxes, scores, idxs, float(iou_threshold), plus_one)


def _check_nms_args(
    boxes: object, scores: object, iou_threshold: object, plus_one: object, op: str
) -> None:
    boxes = check_tensor(boxes, "boxes", op)
    scores = check_tensor(scores, "scores", op)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{op}: boxes must be a [N, 4] tensor (x1, y1, x2, y2), got shape {tuple(boxes.shape)}"
        )
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{op}: scores must be a [N] tensor with N = {boxes.shape[0]} (one per box), "
            f"got shape {tuple(scores.shape)}"
        )
    check_floating(boxes, "boxes", op)
    check_floating(scores, "scores", op)
    check_same_device(boxes, scores, ("boxes", "scores"), op)
    check_same_dtype(boxes, scores, ("boxes", "scores"), op)
    if not isinstance(iou_threshold, numbers.Real) or isinstance(iou_threshold, bool):
        raise TypeError(f"{op}: iou_threshold must be a number, got {iou_threshold!r}")
    if not isinstance(plus_one, bool):
        raise TypeError(f"{op}: plus_one must be a bool, got {plus_one!r}")


@torch.library.register_fake("pydetectron::nms")
def _nms_fake(boxes: Tensor, scores: Tensor, iou_threshold: float, plus_one: bool = False) -> Tensor:
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)


@torch.library.register_fake("pydetectron::batched_nms")
def _batched_nms_fake(
    boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float, plus_one: bool = False
) -> Tensor:
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)
