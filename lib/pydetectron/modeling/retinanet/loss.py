"""RetinaNet losses: focal loss on every non-ignored anchor, smooth L1 on foreground anchors.

Classification (the compiled `pydetectron.ops` focal losses):
  sigmoid (Detectron): logit c - 1 of a class-c anchor is its positive, background anchors
    have none; with `background_logit` (torchvision) logit c is class c and logit 0 is
    always a negative;
  softmax: one C-way softmax per anchor, label 0 for background (Detectron's SoftmaxFocalLoss).
Box regression: smooth L1 with `beta` (0 gives L1, torchvision's) on the deltas of foreground
anchors (of their class with class-specific boxes), times `bbox_reg_weight`.
Normalisation (`normalization`):
  'batch_fg_plus_one'  each loss summed over the batch / sum over images of (foreground + 1)
                       (Detectron's retnet_fg_num);
  'per_image_fg'       each image's sum / max(1, its foreground), averaged over images
                       (torchvision).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pydetectron import ops

from .layout import OutputLayout
from .targets import RetinaNetTargets

LOSS_NORMALIZATIONS = ("batch_fg_plus_one", "per_image_fg")


class RetinaNetLoss(OutputLayout):
    """Computes {'loss_retnet_cls', 'loss_retnet_bbox'} from flattened head outputs and targets.

    Args:
        num_classes: C, classes including background.
        softmax: softmax classification (RETINANET.SOFTMAX) instead of per-class sigmoids.
        background_logit: the sigmoid classifier has a logit for class 0 (RETINANET.BACKGROUND_LOGIT).
        class_specific_bbox: deltas per foreground class (RETINANET.CLASS_SPECIFIC_BBOX).
        alpha, gamma: focal loss settings (RETINANET.LOSS_ALPHA, LOSS_GAMMA).
        beta: smooth-L1 beta (RETINANET.BBOX_REG_BETA).
        bbox_reg_weight: box loss weight (RETINANET.BBOX_REG_WEIGHT).
        normalization: see the module docstring (RETINANET.LOSS_NORMALIZATION).
    """

    def __init__(
        self,
        num_classes: int,
        softmax: bool = False,
        background_logit: bool = False,
        class_specific_bbox: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        beta: float = 0.11,
        bbox_reg_weight: float = 1.0,
        normalization: str = "batch_fg_plus_one",
    ) -> None:
        if normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {LOSS_NORMALIZATIONS}, got {normalization!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.set_layout(num_classes, softmax, background_logit, class_specific_bbox)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.bbox_reg_weight = float(bbox_reg_weight)
        self.normalization = normalization

    def __call__(
        self, cls_logits: torch.Tensor, bbox_deltas: torch.Tensor, targets: RetinaNetTargets
    ) -> dict[str, torch.Tensor]:
        """cls_logits [N, R, K], bbox_deltas [N, R, B] (rows in the anchors' order)."""
        labels = targets.labels
        num_images, num_anchors = labels.shape
        for name, value, width in (
            ("cls_logits", cls_logits, self.num_logits),
            ("bbox_deltas", bbox_deltas, self.box_dim),
        ):
            if value.shape != (num_images, num_anchors, width):
                raise ValueError(f"{name} must have shape {(num_images, num_anchors, width)}, got {tuple(value.shape)}")
        # Half-precision outputs (AMP) are scored in float32.
        compute_dtype = torch.promote_types(cls_logits.dtype, torch.float32)
        cls_logits, bbox_deltas = cls_logits.to(compute_dtype), bbox_deltas.to(compute_dtype)
        cls_sums = torch.stack([self._cls_sum(cls_logits[i], labels[i]) for i in range(num_images)])
        box_sums = torch.stack(
            [self._box_sum(bbox_deltas[i], labels[i], targets.bbox_targets[i]) for i in range(num_images)]
        )
        num_fg = targets.num_foreground.to(compute_dtype)
        if self.normalization == "batch_fg_plus_one":
            normalizer = (num_fg + 1.0).sum()
            loss_cls, loss_bbox = cls_sums.sum() / normalizer, box_sums.sum() / normalizer
        else:
            per_image = num_fg.clamp(min=1.0)
            loss_cls, loss_bbox = (cls_sums / per_image).mean(), (box_sums / per_image).mean()
        return {
            "loss_retnet_cls": loss_cls,
            "loss_retnet_bbox": loss_bbox * self.bbox_reg_weight,
            "retnet_fg_num": (labels > 0).sum().to(compute_dtype),
            "retnet_bg_num": (labels == 0).sum().to(compute_dtype),
        }

    def _cls_sum(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Focal loss summed over one image's anchors [R, K] with labels [R]."""
        if self.softmax:
            return ops.softmax_focal_loss(logits, labels, alpha=self.alpha, gamma=self.gamma, reduction="sum")
        valid = labels >= 0
        one_hot = F.one_hot(labels[valid], self.num_classes).to(logits.dtype)
        one_hot = one_hot[:, 1:] if not self.background_logit else one_hot * (labels[valid] > 0)[:, None]
        return ops.sigmoid_focal_loss(logits[valid], one_hot, alpha=self.alpha, gamma=self.gamma, reduction="sum")

    def _box_sum(self, deltas: torch.Tensor, labels: torch.Tensor, bbox_targets: torch.Tensor) -> torch.Tensor:
        """Smooth L1 summed over one image's foreground anchors."""
        foreground = torch.nonzero(labels > 0, as_tuple=True)[0]
        picked = deltas[foreground]
        if self.class_specific_bbox:
            rows = torch.arange(foreground.numel(), device=deltas.device)
            picked = picked.view(-1, self.num_classes - 1, 4)[rows, labels[foreground] - 1]
        target = bbox_targets[foreground].to(picked.dtype)
        if self.beta == 0:
            return F.l1_loss(picked, target, reduction="sum")
        return F.smooth_l1_loss(picked, target, beta=self.beta, reduction="sum")
