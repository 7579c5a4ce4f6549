"""RPN training targets: label and sample anchors, encode their box targets.

Detectron's roi_data/rpn.py (_get_rpn_blobs) semantics, on the anchors' device:
- with straddle_thresh >= 0 only anchors inside the image by that margin take part
  (x1 >= -t, y1 >= -t, x2 < W + t, y2 < H + t); < 0 keeps all;
- IoU with the image's non-crowd gt boxes (crowd boxes play no part);
- foreground: max IoU >= positive_overlap, or the anchor reaches some gt's highest IoU
  (every tie counts; only gt boxes whose highest IoU is > 0);
- background: max IoU < negative_overlap and not foreground;
- at most fg_fraction * batch_size_per_im foreground anchors are sampled, background
  fills the rest of the batch, both uniformly without replacement;
- images without gt: every sampled anchor is background.
Detectron drew background with replacement and let it overwrite low-IoU foreground;
here foreground wins and draws have no repeats, as in detectron2 and torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pydetectron.structures.boxes import box_iou, check_boxes, encode_boxes


@dataclass
class RPNTargets:
    """Targets of a batch for anchors concatenated over levels (K rows)."""

    labels: torch.Tensor  # [N, K] int64: 1 sampled foreground, 0 sampled background, -1 ignored
    bbox_targets: torch.Tensor  # [N, K, 4] encoded deltas, zero except on sampled foreground


def sample_random(mask: torch.Tensor, quota: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Per row, keep at most quota[row] of the True entries of `mask` [N, K], chosen by `keys`.

    `keys` [N, K] are uniform random numbers in [0, 1): the entries with the smallest keys
    among the candidates are kept, which is a uniform draw without replacement.
    """
    ranked_keys = keys.masked_fill(~mask, 2.0)
    order = ranked_keys.argsort(dim=1)
    rank = torch.empty_like(order)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(order)
    rank.scatter_(1, order, positions)
    return mask & (rank < quota[:, None])


class RPNTargetAssigner:
    """Labels and samples anchors for the RPN losses; settings as Detectron's TRAIN.RPN_*."""

    def __init__(
        self,
        positive_overlap: float = 0.7,
        negative_overlap: float = 0.3,
        fg_fraction: float = 0.5,
        batch_size_per_im: int = 256,
        straddle_thresh: float = 0.0,
        plus_one: bool = True,
    ) -> None:
        if not 0.0 <= fg_fraction <= 1.0:
            raise ValueError(f"fg_fraction must lie in [0, 1], got {fg_fraction}")
        if batch_size_per_im <= 0:
            raise ValueError(f"batch_size_per_im must be positive, got {batch_size_per_im}")
        self.positive_overlap = float(positive_overlap)
        self.negative_overlap = float(negative_overlap)
        self.fg_fraction = float(fg_fraction)
        self.batch_size_per_im = int(batch_size_per_im)
        self.straddle_thresh = float(straddle_thresh)
        self.plus_one = bool(plus_one)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"

    @torch.no_grad()
    def __call__(
        self,
        anchors: torch.Tensor,
        im_info: torch.Tensor,
        gt_boxes: Sequence[torch.Tensor],
        gt_is_crowd: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> RPNTargets:
        """Targets for anchors [K, 4] shared by the N images of im_info [N, 3] (h, w, scale).

        gt_boxes[i] is [Gi, 4] in network-input pixels; gt_is_crowd[i] is [Gi] (bool or 0/1).
        `generator` seeds the sampling (on its own device; keys are then moved to the anchors').
        """
        check_boxes(anchors, "anchors")
        num_images = im_info.shape[0]
        if len(gt_boxes) != num_images:
            raise ValueError(f"gt_boxes has {len(gt_boxes)} entries for {num_images} images")
        if gt_is_crowd is not None and len(gt_is_crowd) != num_images:
            raise ValueError(f"gt_is_crowd has {len(gt_is_crowd)} entries for {num_images} images")
        device = anchors.device
        inside = self._inside_mask(anchors, im_info.to(device=device, dtype=anchors.dtype))
        fg_candidates = torch.zeros_like(inside)
        bg_candidates = torch.zeros_like(inside)
        matched_gt = anchors.new_zeros((num_images,) + tuple(anchors.shape))
        for image in range(num_images):
            boxes = self._non_crowd(gt_boxes, gt_is_crowd, image).to(device=device, dtype=anchors.dtype)
            fg, bg, matched = self._match(anchors, inside[image], boxes)
            fg_candidates[image], bg_candidates[image] = fg, bg
            if matched is not None:
                matched_gt[image] = matched
        labels = self._sample(fg_candidates, bg_candidates, generator)
        foreground = labels == 1
        bbox_targets = anchors.new_zeros(matched_gt.shape)
        image_index, anchor_index = torch.nonzero(foreground, as_tuple=True)
        bbox_targets[image_index, anchor_index] = encode_boxes(
            anchors[anchor_index], matched_gt[image_index, anchor_index], plus_one=self.plus_one
        )
        return RPNTargets(labels=labels, bbox_targets=bbox_targets)

    def _inside_mask(self, anchors: torch.Tensor, im_info: torch.Tensor) -> torch.Tensor:
        """[N, K] anchors that take part for each image (straddle rule)."""
        num_images = im_info.shape[0]
        if self.straddle_thresh < 0:
            return torch.ones((num_images, anchors.shape[0]), dtype=torch.bool, device=anchors.device)
        t = self.straddle_thresh
        height, width = im_info[:, 0:1], im_info[:, 1:2]
        return (
            (anchors[None, :, 0] >= -t)
            & (anchors[None, :, 1] >= -t)
            & (anchors[None, :, 2] < width + t)
            & (anchors[None, :, 3] < height + t)
        )

    @staticmethod
    def _non_crowd(
        gt_boxes: Sequence[torch.Tensor], gt_is_crowd: Sequence[torch.Tensor] | None, image: int
    ) -> torch.Tensor:
        boxes = gt_boxes[image]
        check_boxes(boxes, f"gt_boxes[{image}]")
        if gt_is_crowd is None:
            return boxes
        crowd = torch.as_tensor(gt_is_crowd[image], device=boxes.device)
        if crowd.shape != (boxes.shape[0],):
            raise ValueError(
                f"gt_is_crowd[{image}] must have shape ({boxes.shape[0]},) like gt_boxes[{image}], "
                f"got {tuple(crowd.shape)}"
            )
        return boxes[crowd == 0]

    def _match(
        self, anchors: torch.Tensor, inside: torch.Tensor, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Foreground and background candidates [K] and each anchor's best gt box [K, 4]."""
        if boxes.shape[0] == 0:
            return torch.zeros_like(inside), inside.clone(), None
        iou = box_iou(anchors, boxes, plus_one=self.plus_one)
        iou = iou.masked_fill(~inside[:, None], -1.0)
        max_iou, best_gt = iou.max(dim=1)
        gt_best_iou = iou.max(dim=0).values
        reaches_gt_best = ((iou == gt_best_iou[None, :]) & (gt_best_iou[None, :] > 0)).any(dim=1)
        fg = inside & ((max_iou >= self.positive_overlap) | reaches_gt_best)
        bg = inside & (max_iou < self.negative_overlap) & ~fg
        return fg, bg, boxes[best_gt]

    def _sample(
        self, fg_candidates: torch.Tensor, bg_candidates: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Labels [N, K]: fg capped at fg_fraction * batch, bg fills the rest of the batch."""
        device = fg_candidates.device
        gen_device = generator.device if generator is not None else device
        keys = torch.rand(fg_candidates.shape, generator=generator, device=gen_device).to(device)
        num_images = fg_candidates.shape[0]
        fg_quota = torch.full((num_images,), int(self.fg_fraction * self.batch_size_per_im), device=device)
        fg = sample_random(fg_candidates, fg_quota, keys)
        bg_quota = self.batch_size_per_im - fg.sum(dim=1)
        bg = sample_random(bg_candidates, bg_quota, keys)
        labels = torch.full(fg.shape, -1, dtype=torch.int64, device=device)
        labels[bg] = 0
        labels[fg] = 1
        return labels
