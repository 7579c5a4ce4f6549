"""Fast R-CNN training targets: sample proposals and assign classes and box targets.

Detectron's fast_rcnn roi_data semantics: ground-truth boxes join the proposals, each
proposal takes the class of its best-overlapping non-crowd gt box; proposals with IoU >=
fg_thresh are foreground (at most fg_fraction of the batch), those with IoU in
[bg_thresh_lo, bg_thresh_hi) background. All work is batched torch on the proposals'
device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pydetectron.structures.boxes import box_iou, encode_boxes


@dataclass
class SampledRoIs:
    """Sampled RoIs of a batch, concatenated over images.

    `candidates` are, per image, the boxes the sample was drawn from (proposals followed
    by the non-crowd gt boxes); `head_map` is the box head's last map of the sampled RoIs
    when a branch shares it (Detectron's v0upshare mask head).
    """

    rois: torch.Tensor  # [R, 5] (batch index, x1, y1, x2, y2)
    labels: torch.Tensor  # [R] int64, 0 = background
    bbox_targets: torch.Tensor  # [R, 4] encoded deltas (zeros for background)
    matched_gt_index: torch.Tensor  # [R] index into the image's gt list (-1 for background)
    candidates: list[torch.Tensor] | None = None
    head_map: torch.Tensor | None = None


def random_subset(mask: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """Indices of at most `count` True entries of `mask`, chosen uniformly at random."""
    candidates = torch.nonzero(mask, as_tuple=False).squeeze(1)
    if candidates.numel() <= count:
        return candidates
    gen_device = generator.device if generator is not None else candidates.device
    order = torch.randperm(candidates.numel(), generator=generator, device=gen_device)
    return candidates[order[:count].to(candidates.device)]


class FastRCNNSampler:
    """Detectron's proposal sampling for the box head (TRAIN.FG_THRESH etc.)."""

    def __init__(
        self,
        batch_size_per_image: int = 512,
        fg_fraction: float = 0.25,
        fg_thresh: float = 0.5,
        bg_thresh_hi: float = 0.5,
        bg_thresh_lo: float = 0.0,
        bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
        plus_one: bool = True,
        add_gt_as_proposals: bool = True,
    ) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.fg_fraction = fg_fraction
        self.fg_thresh = fg_thresh
        self.bg_thresh_hi = bg_thresh_hi
        self.bg_thresh_lo = bg_thresh_lo
        self.bbox_reg_weights = tuple(bbox_reg_weights)
        self.plus_one = plus_one
        self.add_gt_as_proposals = add_gt_as_proposals

    @classmethod
    def from_cfg(cls, cfg) -> FastRCNNSampler:
        return cls(
            batch_size_per_image=cfg.TRAIN.BATCH_SIZE_PER_IM,
            fg_fraction=cfg.TRAIN.FG_FRACTION,
            fg_thresh=cfg.TRAIN.FG_THRESH,
            bg_thresh_hi=cfg.TRAIN.BG_THRESH_HI,
            bg_thresh_lo=cfg.TRAIN.BG_THRESH_LO,
            bbox_reg_weights=tuple(cfg.MODEL.BBOX_REG_WEIGHTS),
            plus_one=cfg.MODEL.BOX_PLUS_ONE,
        )

    def sample_image(
        self,
        proposals: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_classes: torch.Tensor,
        gt_is_crowd: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample one image's RoIs: (boxes [R, 4], labels [R], targets [R, 4], gt index [R],
        the candidate boxes the sample was drawn from)."""
        if gt_is_crowd is None:
            gt_is_crowd = torch.zeros(gt_boxes.shape[0], dtype=torch.bool, device=gt_boxes.device)
        gt_is_crowd = gt_is_crowd.bool()
        proposals = proposals.to(gt_boxes.dtype) if gt_boxes.numel() else proposals
        usable = ~gt_is_crowd
        real_gt = gt_boxes[usable]
        real_classes = gt_classes[usable]
        real_index = torch.nonzero(usable, as_tuple=False).squeeze(1)
        boxes = torch.cat((proposals, real_gt), dim=0) if self.add_gt_as_proposals else proposals
        if real_gt.shape[0] > 0:
            iou = box_iou(boxes, real_gt, plus_one=self.plus_one)
            max_iou, argmax = iou.max(dim=1)
        else:
            max_iou = torch.zeros(boxes.shape[0], dtype=boxes.dtype, device=boxes.device)
            argmax = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)

        fg_per_image = int(round(self.fg_fraction * self.batch_size_per_image))
        fg = random_subset(max_iou >= self.fg_thresh, fg_per_image, generator)
        bg_mask = (max_iou < self.bg_thresh_hi) & (max_iou >= self.bg_thresh_lo)
        bg = random_subset(bg_mask, self.batch_size_per_image - fg.numel(), generator)
        keep = torch.cat((fg, bg))
        sampled = boxes[keep]
        labels = torch.zeros(keep.numel(), dtype=torch.long, device=boxes.device)
        gt_index = torch.full((keep.numel(),), -1, dtype=torch.long, device=boxes.device)
        targets = torch.zeros((keep.numel(), 4), dtype=boxes.dtype, device=boxes.device)
        if fg.numel() > 0:
            matched = argmax[fg]
            labels[: fg.numel()] = real_classes[matched].long()
            gt_index[: fg.numel()] = real_index[matched]
            targets[: fg.numel()] = encode_boxes(
                sampled[: fg.numel()], real_gt[matched], self.bbox_reg_weights, self.plus_one
            )
        return sampled, labels, targets, gt_index, boxes

    def __call__(
        self,
        proposals: list[torch.Tensor],
        gt_boxes: list[torch.Tensor],
        gt_classes: list[torch.Tensor],
        gt_is_crowd: list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> SampledRoIs:
        """Sample every image of the batch and concatenate with batch indices."""
        if not (len(proposals) == len(gt_boxes) == len(gt_classes)):
            raise ValueError(
                f"proposals ({len(proposals)}), gt_boxes ({len(gt_boxes)}) and gt_classes "
                f"({len(gt_classes)}) must have one entry per image"
            )
        parts = [
            self.sample_image(p, b, c, None if gt_is_crowd is None else gt_is_crowd[i], generator)
            for i, (p, b, c) in enumerate(zip(proposals, gt_boxes, gt_classes))
        ]
        rois = torch.cat(
            [torch.cat((torch.full_like(s[0][:, :1], i), s[0]), dim=1) for i, s in enumerate(parts)]
        )
        return SampledRoIs(
            rois=rois,
            labels=torch.cat([s[1] for s in parts]),
            bbox_targets=torch.cat([s[2] for s in parts]),
            matched_gt_index=torch.cat([s[3] for s in parts]),
            candidates=[s[4] for s in parts],
        )
