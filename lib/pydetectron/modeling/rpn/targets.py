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

from pydetectron.structures.boxes import check_boxes, encode_boxes
from pydetectron.utils.settings_repr import SettingsRepr
from pydetectron.utils.threads import single_threaded


@dataclass
class RPNTargets:
    """Targets of a batch for anchors concatenated over levels (K rows)."""

    labels: torch.Tensor  # [N, K] int64: 1 sampled foreground, 0 sampled background, -1 ignored
    bbox_targets: torch.Tensor  # [N, K, 4] encoded deltas, zero except on sampled foreground


def sample_random(mask: torch.Tensor, quota: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Per row, keep at most quota[row] of the True entries of `mask` [N, K], chosen by `keys`.

    `keys` [N, K] are uniform random numbers in [0, 1): the entries with the smallest keys
    among the candidates are kept, which is a uniform draw without replacement. Equal keys
    are taken in index order (what a stable sort of the keys would give).

    One partial top-k per batch finds each row's quota-th smallest key; entries below it are
    kept and entries equal to it fill the rest of the quota, lowest index first. That costs a
    few passes over [N, K] instead of a full sort of every row.
    """
    num_rows, num_cols = mask.shape
    quota = quota.to(device=mask.device, dtype=torch.int64).clamp(min=0, max=num_cols)
    largest_quota = int(quota.max()) if num_rows > 0 else 0
    if largest_quota == 0 or num_cols == 0:
        return torch.zeros_like(mask)
    # Non-candidates get the key 2, above every real key, so they rank last.
    ranked = keys.masked_fill(~mask, 2.0)
    smallest = ranked.topk(largest_quota, dim=1, largest=False, sorted=True).values
    # the quota-th smallest key of each row (rows with quota 0 take nothing)
    threshold = smallest.gather(1, (quota - 1).clamp(min=0)[:, None])
    threshold = torch.where(quota[:, None] > 0, threshold, torch.full_like(threshold, -1.0))
    below = mask & (ranked < threshold)
    at_threshold = mask & (ranked == threshold)
    room = quota - below.sum(dim=1)
    return below | (at_threshold & (at_threshold.cumsum(dim=1) <= room[:, None]))


def iou_gt_by_anchor(gt_boxes: torch.Tensor, anchor_columns: torch.Tensor, plus_one: bool) -> torch.Tensor:
    """IoU [G, K] of gt boxes [G, 4] with anchors given as columns [4, K] (x1, y1, x2, y2 rows).

    The same arithmetic as `box_iou(anchors, gt_boxes).T`, bit for bit, laid out gt-major so
    that every pass runs over K contiguous anchors, and with the intermediate arrays reused.
    """
    off = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = anchor_columns
    anchor_area = (x2 - x1 + off) * (y2 - y1 + off)
    gt_area = (gt_boxes[:, 2] - gt_boxes[:, 0] + off) * (gt_boxes[:, 3] - gt_boxes[:, 1] + off)
    width = torch.minimum(x2[None, :], gt_boxes[:, 2:3])
    width.sub_(torch.maximum(x1[None, :], gt_boxes[:, 0:1])).add_(off).clamp_(min=0)
    height = torch.minimum(y2[None, :], gt_boxes[:, 3:4])
    height.sub_(torch.maximum(y1[None, :], gt_boxes[:, 1:2])).add_(off).clamp_(min=0)
    inter = width.mul_(height)
    union = anchor_area[None, :] + gt_area[:, None]
    return inter.div_(union.sub_(inter))


class RPNTargetAssigner(SettingsRepr):
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
        On the CPU this runs on one thread: its many small passes gain nothing from the pool
        and stall on it when the machine is loaded (`pydetectron.utils.threads`).
        """
        if anchors.device.type == "cpu":
            with single_threaded():
                return self._assign(anchors, im_info, gt_boxes, gt_is_crowd, generator)
        return self._assign(anchors, im_info, gt_boxes, gt_is_crowd, generator)

    def _assign(
        self,
        anchors: torch.Tensor,
        im_info: torch.Tensor,
        gt_boxes: Sequence[torch.Tensor],
        gt_is_crowd: Sequence[torch.Tensor] | None,
        generator: torch.Generator | None,
    ) -> RPNTargets:
        check_boxes(anchors, "anchors")
        num_images = im_info.shape[0]
        if len(gt_boxes) != num_images:
            raise ValueError(f"gt_boxes has {len(gt_boxes)} entries for {num_images} images")
        if gt_is_crowd is not None and len(gt_is_crowd) != num_images:
            raise ValueError(f"gt_is_crowd has {len(gt_is_crowd)} entries for {num_images} images")
        device = anchors.device
        inside = self._inside_mask(anchors, im_info.to(device=device, dtype=anchors.dtype))
        anchor_columns = anchors.t().contiguous()
        fg_candidates = torch.zeros_like(inside)
        bg_candidates = torch.zeros_like(inside)
        best_gt = torch.zeros(inside.shape, dtype=torch.int64, device=device)
        image_boxes = []
        for image in range(num_images):
            boxes = self._non_crowd(gt_boxes, gt_is_crowd, image).to(device=device, dtype=anchors.dtype)
            image_boxes.append(boxes)
            self._match(
                anchor_columns, inside[image], boxes, fg_candidates[image], bg_candidates[image], best_gt[image]
            )
        labels = self._sample(fg_candidates, bg_candidates, generator)
        bbox_targets = anchors.new_zeros((num_images,) + tuple(anchors.shape))
        for image, boxes in enumerate(image_boxes):
            anchor_index = torch.nonzero(labels[image] == 1, as_tuple=True)[0]
            if anchor_index.numel() > 0:
                matched = boxes[best_gt[image, anchor_index]]
                bbox_targets[image, anchor_index] = encode_boxes(
                    anchors[anchor_index], matched, plus_one=self.plus_one
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
        self,
        anchor_columns: torch.Tensor,
        inside: torch.Tensor,
        boxes: torch.Tensor,
        fg: torch.Tensor,
        bg: torch.Tensor,
        best_gt: torch.Tensor,
    ) -> None:
        """Fill one image's foreground / background candidates [K] and each anchor's best gt
        index [K] (first of equal IoUs), for anchors as columns [4, K]."""
        if boxes.shape[0] == 0:
            bg.copy_(inside)
            return
        iou = iou_gt_by_anchor(boxes, anchor_columns, self.plus_one)  # [G, K]
        if self.straddle_thresh >= 0:
            iou.masked_fill_(~inside[None, :], -1.0)
        max_iou, best = iou.max(dim=0)
        best_gt.copy_(best)
        gt_best_iou = iou.max(dim=1).values
        reachable = gt_best_iou > 0
        reaches_gt_best = (iou[reachable] == gt_best_iou[reachable, None]).any(dim=0)
        torch.logical_and(inside, (max_iou >= self.positive_overlap) | reaches_gt_best, out=fg)
        torch.logical_and(inside, (max_iou < self.negative_overlap) & ~fg, out=bg)

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
