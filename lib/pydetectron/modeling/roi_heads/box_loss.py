"""Fast R-CNN losses with Detectron's normalisation.

Classification: softmax cross-entropy averaged over all sampled RoIs. Regression: smooth
L1 (beta 1) on the ground-truth class's 4 deltas of foreground RoIs, summed and divided by
the number of sampled RoIs (Caffe2's SmoothL1Loss divides by the batch dimension).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_l1(input: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Elementwise smooth L1 (Huber divided by beta), as Detectron's SmoothL1Loss."""
    diff = (input - target).abs()
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def fast_rcnn_losses(
    cls_score: torch.Tensor,
    bbox_pred: torch.Tensor,
    labels: torch.Tensor,
    bbox_targets: torch.Tensor,
    class_agnostic_bbox_reg: bool = False,
) -> dict[str, torch.Tensor]:
    """`loss_cls`, `loss_bbox` and the `accuracy_cls` metric for sampled RoIs."""
    # half-precision outputs (autocast) are scored in float32
    dtype = torch.promote_types(cls_score.dtype, torch.float32)
    cls_score, bbox_pred = cls_score.to(dtype), bbox_pred.to(dtype)
    num_rois = labels.numel()
    if num_rois == 0:
        zero = cls_score.sum() * 0 + bbox_pred.sum() * 0
        return {"loss_cls": zero, "loss_bbox": zero, "accuracy_cls": zero.detach()}
    loss_cls = F.cross_entropy(cls_score, labels)
    fg = torch.nonzero(labels > 0, as_tuple=False).squeeze(1)
    column = 1 if class_agnostic_bbox_reg else labels[fg]
    deltas = bbox_pred.view(num_rois, -1, 4)[fg, column]
    loss_bbox = smooth_l1(deltas, bbox_targets[fg].to(deltas.dtype), beta=1.0).sum() / num_rois
    accuracy = (cls_score.detach().argmax(dim=1) == labels).float().mean()
    return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "accuracy_cls": accuracy}
