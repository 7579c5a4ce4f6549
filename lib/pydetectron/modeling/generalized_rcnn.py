"""Generalized R-CNN: conv body -> RPN -> RoI box head -> detections (Detectron's model).

Training returns a dict of losses (`loss_*`) and metrics; inference returns one
`Detections` per image with boxes in original-image pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .roi_heads.box_heads import FastRCNNOutputs
from .roi_heads.box_loss import fast_rcnn_losses
from .roi_heads.box_postprocess import BoxPostProcessor, Detections
from .roi_heads.box_sampling import FastRCNNSampler
from .roi_heads.roi_pooler import RoIPooler
from .rpn.rpn import RPN

BOX_DECODE_SPACES = ("original", "input")


def _level(scale: float) -> int:
    return int(round(-math.log2(scale)))


class GeneralizedRCNN(nn.Module):
    """Faster R-CNN (and RPN-only) models in Detectron's layout.

    Args:
        body: conv body; returns one map or a list of maps (FPN: coarsest first) and has
            `dim_out` and `spatial_scale` (float or list, same order as its outputs).
        rpn: the RPN, fed the body outputs selected by `rpn_levels` (None: all).
        box_pooler, box_head, box_outputs: RoI transform, head and output layer fed the
            body outputs selected by `roi_levels` (None: all). Absent for RPN-only models.
        sampler: training-time proposal sampling for the box head.
        postprocessor: test-time scoring, NMS and limits.
        box_decode_space: 'original' decodes boxes after dividing RoIs by the image scale and
            clips to the original image (Detectron); 'input' decodes and clips in network-input
            pixels, then rescales (torchvision).
    """

    def __init__(
        self,
        body: nn.Module,
        rpn: RPN,
        box_pooler: RoIPooler | None = None,
        box_head: nn.Module | None = None,
        box_outputs: FastRCNNOutputs | None = None,
        sampler: FastRCNNSampler | None = None,
        postprocessor: BoxPostProcessor | None = None,
        rpn_levels: Sequence[int] | None = None,
        roi_levels: Sequence[int] | None = None,
        box_decode_space: str = "original",
    ) -> None:
        super().__init__()
        if box_decode_space not in BOX_DECODE_SPACES:
            raise ValueError(f"box_decode_space must be one of {BOX_DECODE_SPACES}, got {box_decode_space!r}")
        self.body = body
        self.rpn = rpn
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_outputs = box_outputs
        self.sampler = sampler
        self.postprocessor = postprocessor
        self.box_decode_space = box_decode_space
        scales = body.spatial_scale if isinstance(body.spatial_scale, list) else [body.spatial_scale]
        self.body_levels = [_level(s) for s in scales]
        self._rpn_index = self._select(rpn_levels)
        self._roi_index = self._select(roi_levels)
        self.rpn_only = box_head is None

    def _select(self, levels: Sequence[int] | None) -> list[int]:
        if levels is None:
            return list(range(len(self.body_levels)))
        missing = [lv for lv in levels if lv not in self.body_levels]
        if missing:
            raise ValueError(f"the body produces levels {self.body_levels}; levels {missing} are missing")
        return [self.body_levels.index(lv) for lv in levels]

    def split_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Run the body; (maps the RPN reads, maps the RoI heads read)."""
        features = self.body(images)
        if isinstance(features, torch.Tensor):
            features = [features]
        return [features[i] for i in self._rpn_index], [features[i] for i in self._roi_index]

    def forward(
        self,
        images: torch.Tensor,
        im_info: torch.Tensor,
        targets: Sequence[dict[str, torch.Tensor]] | None = None,
        original_sizes: Sequence[tuple[int, int]] | None = None,
    ):
        """Losses (training, needs `targets`) or detections (eval).

        images [N, 3, H, W] (padded batch); im_info [N, 3] = (height, width, scale) of each
        image inside the batch; targets per image: 'boxes' [G, 4] in input pixels, 'gt_classes'
        [G] (1-based) and optionally 'is_crowd' [G]; original_sizes (h, w) of the images
        before scaling (default: im_info h, w divided by the scale, rounded).
        """
        if images.dim() != 4:
            raise ValueError(f"images must be a batch [N, 3, H, W], got shape {tuple(images.shape)}")
        if im_info.dim() != 2 or im_info.shape != (images.shape[0], 3):
            raise ValueError(
                f"im_info must have shape [{images.shape[0]}, 3] (h, w, scale), got {tuple(im_info.shape)}"
            )
        im_info = im_info.to(device=images.device, dtype=torch.float32)
        rpn_features, roi_features = self.split_features(images)

        if self.training:
            if targets is None:
                raise ValueError("GeneralizedRCNN needs targets in training mode")
            return self._losses(rpn_features, roi_features, im_info, targets)
        proposals, proposal_scores, _ = self.rpn(rpn_features, im_info)
        if original_sizes is None:
            original_sizes = [
                (int(round(float(h) / float(s))), int(round(float(w) / float(s)))) for h, w, s in im_info.tolist()
            ]
        if self.rpn_only:
            return [
                Detections(p / float(info[2]), s, torch.ones_like(s, dtype=torch.long))
                for p, s, info in zip(proposals, proposal_scores, im_info)
            ]
        return self._detect(roi_features, proposals, im_info, original_sizes)

    def _losses(self, rpn_features, roi_features, im_info, targets) -> dict[str, torch.Tensor]:
        device = im_info.device
        gt_boxes = [t["boxes"].to(device=device, dtype=torch.float32) for t in targets]
        gt_classes = [t["gt_classes"].to(device=device, dtype=torch.long) for t in targets]
        gt_crowd = [
            t.get("is_crowd", torch.zeros(len(b), dtype=torch.bool)).to(device=device, dtype=torch.bool)
            for t, b in zip(targets, gt_boxes)
        ]
        proposals, _, losses = self.rpn(rpn_features, im_info, gt_boxes, gt_crowd)
        if self.rpn_only:
            return losses
        sampled = self.sampler([p.detach() for p in proposals], gt_boxes, gt_classes, gt_crowd)
        pooled = self.box_pooler(roi_features, sampled.rois)
        cls_score, bbox_pred = self.box_outputs(self.box_head(pooled))
        losses.update(
            fast_rcnn_losses(
                cls_score, bbox_pred, sampled.labels, sampled.bbox_targets, self.box_outputs.class_agnostic_bbox_reg
            )
        )
        return losses

    def _detect(self, roi_features, proposals, im_info, original_sizes) -> list[Detections]:
        rois = torch.cat(
            [torch.cat((torch.full_like(p[:, :1], i), p), dim=1) for i, p in enumerate(proposals)]
        )
        pooled = self.box_pooler(roi_features, rois)
        cls_score, bbox_pred = self.box_outputs(self.box_head(pooled))
        cls_score, bbox_pred = cls_score.float(), bbox_pred.float()
        if self.box_decode_space == "original":
            boxes = [p / float(info[2]) for p, info in zip(proposals, im_info)]
            return self.postprocessor(cls_score, bbox_pred, boxes, list(original_sizes))
        input_sizes = [(float(h), float(w)) for h, w, _ in im_info.tolist()]
        detections = self.postprocessor(cls_score, bbox_pred, list(proposals), input_sizes)
        for det, (h, w), (oh, ow) in zip(detections, input_sizes, original_sizes):
            ratio = det.boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])
            det.boxes = det.boxes * ratio
        return detections
