"""RetinaNet training targets: every anchor is foreground, background or ignored.

Detectron's roi_data/retinanet.py (_get_retinanet_blobs) and torchvision's Matcher, on the
anchors' device, without sampling. Per image, against its non-crowd gt boxes:
- an anchor whose best IoU is >= positive_overlap is foreground, labelled with that box's class;
- low-quality matches: the anchors that reach some gt box's highest IoU (every tie; only boxes
  whose highest IoU is > 0) are foreground too, labelled with their own best box's class;
- an anchor whose best IoU is < negative_overlap is background; with 'unless_background'
  (Detectron) that also takes back low-quality matches, with 'always' (torchvision) it does
  not, and 'none' adds no low-quality matches;
- everything else is ignored. Images without gt boxes: every anchor is background.
Every anchor takes part (Detectron's RetinaNet has no straddle rule). Foreground anchors
get encoded box targets (weights 1, 1, 1, 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pydetectron.structures.boxes import box_iou, check_boxes, encode_boxes
from pydetectron.structures.ground_truth import GroundTruth
from pydetectron.utils.settings_repr import SettingsRepr

LOW_QUALITY_MATCHES = ("unless_background", "always", "none")


@dataclass
class RetinaNetTargets:
    """Targets of a batch for anchors concatenated over levels (R rows)."""

    labels: torch.Tensor  # [N, R] int64: class (1-based) foreground, 0 background, -1 ignored
    bbox_targets: torch.Tensor  # [N, R, 4] encoded deltas, zero except on foreground
    # [N] anchors the matching made foreground, counting (as Detectron's retnet_fg_num does) the
    # low-quality matches that the background rule took back
    num_foreground: torch.Tensor


class RetinaNetTargetAssigner(SettingsRepr):
    """Labels all anchors of a batch; settings as RETINANET.POSITIVE_OVERLAP / NEGATIVE_OVERLAP."""

    def __init__(
        self,
        positive_overlap: float = 0.5,
        negative_overlap: float = 0.4,
        low_quality_matches: str = "unless_background",
        plus_one: bool = True,
    ) -> None:
        if low_quality_matches not in LOW_QUALITY_MATCHES:
            raise ValueError(f"low_quality_matches must be one of {LOW_QUALITY_MATCHES}, got {low_quality_matches!r}")
        if negative_overlap > positive_overlap:
            raise ValueError(
                f"negative_overlap ({negative_overlap}) must not exceed positive_overlap ({positive_overlap})"
            )
        self.positive_overlap = float(positive_overlap)
        self.negative_overlap = float(negative_overlap)
        self.low_quality_matches = low_quality_matches
        self.plus_one = bool(plus_one)

    @torch.no_grad()
    def __call__(self, anchors: torch.Tensor, targets: Sequence[GroundTruth]) -> RetinaNetTargets:
        """Targets for anchors [R, 4] shared by the images whose ground truth is `targets`
        (boxes in network-input pixels)."""
        check_boxes(anchors, "anchors")
        num_images, num_anchors = len(targets), anchors.shape[0]
        device = anchors.device
        labels = torch.full((num_images, num_anchors), -1, dtype=torch.int64, device=device)
        bbox_targets = anchors.new_zeros((num_images, num_anchors, 4))
        num_foreground = anchors.new_zeros((num_images,))
        for image, target in enumerate(targets):
            boxes, classes = self._non_crowd(target, image, device, anchors.dtype)
            if boxes.shape[0] == 0:
                labels[image] = 0
                continue
            matched, foreground, background, best_gt = self._match(anchors, boxes)
            num_foreground[image] = matched.sum()
            labels[image, background] = 0
            labels[image, foreground] = classes[best_gt[foreground]]
            bbox_targets[image, foreground] = encode_boxes(
                anchors[foreground], boxes[best_gt[foreground]], plus_one=self.plus_one
            )
        return RetinaNetTargets(labels=labels, bbox_targets=bbox_targets, num_foreground=num_foreground)

    @staticmethod
    def _non_crowd(
        target: GroundTruth, image: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(target, GroundTruth):
            raise TypeError(f"targets[{image}] must be a GroundTruth, got {type(target).__name__}")
        keep = ~target.is_crowd.to(device=device, dtype=torch.bool)
        boxes = target.boxes.to(device=device, dtype=dtype)[keep]
        classes = target.classes.to(device=device, dtype=torch.int64)[keep]
        if bool((classes < 1).any()):
            raise ValueError(f"targets[{image}].classes must be 1-based foreground classes, got {classes.tolist()}")
        return boxes, classes

    def _match(
        self, anchors: torch.Tensor, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(matched, final foreground, background) masks [R] and each anchor's best gt [R]."""
        iou = box_iou(anchors, boxes, plus_one=self.plus_one)
        max_iou, best_gt = iou.max(dim=1)
        matched = max_iou >= self.positive_overlap
        if self.low_quality_matches != "none":
            gt_best_iou = iou.max(dim=0).values
            matched |= ((iou == gt_best_iou[None, :]) & (gt_best_iou[None, :] > 0)).any(dim=1)
        below = max_iou < self.negative_overlap
        foreground = matched & ~below if self.low_quality_matches == "unless_background" else matched
        return matched, foreground, below & ~foreground, best_gt
