"""RPN losses: sigmoid cross entropy on sampled anchors, smooth L1 on foreground anchors.

Normalisations are named settings:
  cls_normalization  'num_sampled'        / sampled anchors of the batch (Detectron single
                                           scale: SigmoidCrossEntropyLoss normalize=1; torchvision)
                     'batch_size_per_im'  / (images * batch_size_per_im) (Detectron FPN)
  bbox_normalization 'per_image'          each image's sum / its sampled anchors, averaged over
                                           images (Detectron's outside weights + SmoothL1Loss / N)
                     'num_sampled'        batch sum / sampled anchors of the batch (torchvision)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pydetectron.utils.settings_repr import SettingsRepr

CLS_NORMALIZATIONS = ("num_sampled", "batch_size_per_im")
BBOX_NORMALIZATIONS = ("per_image", "num_sampled")


class RPNLoss(SettingsRepr):
    """Computes (loss_cls, loss_bbox) from flattened RPN outputs and `RPNTargets`."""

    def __init__(
        self,
        cls_normalization: str = "num_sampled",
        bbox_normalization: str = "per_image",
        batch_size_per_im: int = 256,
        smooth_l1_beta: float = 1.0 / 9.0,
    ) -> None:
        if cls_normalization not in CLS_NORMALIZATIONS:
            raise ValueError(f"cls_normalization must be one of {CLS_NORMALIZATIONS}, got {cls_normalization!r}")
        if bbox_normalization not in BBOX_NORMALIZATIONS:
            raise ValueError(f"bbox_normalization must be one of {BBOX_NORMALIZATIONS}, got {bbox_normalization!r}")
        self.cls_normalization = cls_normalization
        self.bbox_normalization = bbox_normalization
        self.batch_size_per_im = int(batch_size_per_im)
        self.smooth_l1_beta = float(smooth_l1_beta)

    def __call__(
        self,
        cls_logits: torch.Tensor,
        bbox_deltas: torch.Tensor,
        labels: torch.Tensor,
        bbox_targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cls_logits [N, K], bbox_deltas [N, K, 4], labels [N, K] (1/0/-1), bbox_targets [N, K, 4]."""
        if cls_logits.shape != labels.shape:
            raise ValueError(f"cls_logits {tuple(cls_logits.shape)} and labels {tuple(labels.shape)} must match")
        if bbox_deltas.shape != bbox_targets.shape or bbox_deltas.shape[:2] != labels.shape:
            raise ValueError(
                f"bbox_deltas {tuple(bbox_deltas.shape)} and bbox_targets {tuple(bbox_targets.shape)} "
                f"must both be {tuple(labels.shape) + (4,)}"
            )
        # Half-precision outputs (AMP) are scored in float32.
        compute_dtype = torch.promote_types(cls_logits.dtype, torch.float32)
        cls_logits, bbox_deltas = cls_logits.to(compute_dtype), bbox_deltas.to(compute_dtype)
        num_images = labels.shape[0]
        sampled = labels >= 0
        foreground = labels == 1
        sampled_per_image = sampled.sum(dim=1)

        cls_terms = F.binary_cross_entropy_with_logits(cls_logits, foreground.to(cls_logits.dtype), reduction="none")
        cls_sum = torch.where(sampled, cls_terms, 0.0).sum()
        if self.cls_normalization == "num_sampled":
            loss_cls = cls_sum / sampled_per_image.sum().clamp(min=1)
        else:
            loss_cls = cls_sum / (num_images * self.batch_size_per_im)

        bbox_terms = F.smooth_l1_loss(
            bbox_deltas, bbox_targets.to(bbox_deltas.dtype), beta=self.smooth_l1_beta, reduction="none"
        ).sum(dim=2)
        bbox_per_image = torch.where(foreground, bbox_terms, 0.0).sum(dim=1)
        if self.bbox_normalization == "per_image":
            loss_bbox = (bbox_per_image / sampled_per_image.clamp(min=1)).sum() / max(num_images, 1)
        else:
            loss_bbox = bbox_per_image.sum() / sampled_per_image.sum().clamp(min=1)
        return loss_cls, loss_bbox
