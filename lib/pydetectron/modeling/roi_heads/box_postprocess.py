"""Turn box-head outputs into final detections (Detectron's box_results_with_nms_and_limit).

Per image: softmax scores, class-specific decoding of the deltas, clipping, a per-class
score threshold, per-class NMS (or Soft-NMS, optionally followed by box voting), then a cap
on detections per image. Every class is processed at once with a class-offset batched NMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pydetectron import ops
from pydetectron.structures.boxes import clip_boxes, decode_boxes, nonempty_box_mask
from pydetectron.structures.detections import Detections
from pydetectron.structures.nms_variants import box_voting, soft_nms


@dataclass
class SoftNMSSettings:
    enabled: bool = False
    method: str = "linear"
    sigma: float = 0.5
    overlap_thresh: float = 0.3
    score_thresh: float = 0.0001


@dataclass
class BoxVoteSettings:
    enabled: bool = False
    vote_thresh: float = 0.8
    scoring_method: str = "ID"
    beta: float = 1.0


class BoxPostProcessor:
    """Detectron's test-time box post-processing, with torchvision's variant as options.

    `min_size` > 0 drops tiny boxes before NMS (torchvision uses 1e-2); `keep_ties`
    keeps every detection scoring as high as the last admitted one (Detectron's image
    threshold) instead of cutting exactly at `detections_per_image` (torchvision).
    """

    def __init__(
        self,
        num_classes: int,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_image: int = 100,
        bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
        plus_one: bool = True,
        class_agnostic_bbox_reg: bool = False,
        min_size: float = 0.0,
        keep_ties: bool = True,
        soft_nms_settings: SoftNMSSettings | None = None,
        box_vote_settings: BoxVoteSettings | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_image = detections_per_image
        self.bbox_reg_weights = tuple(bbox_reg_weights)
        self.plus_one = plus_one
        self.class_agnostic_bbox_reg = class_agnostic_bbox_reg
        self.min_size = min_size
        self.keep_ties = keep_ties
        self.soft_nms = soft_nms_settings or SoftNMSSettings()
        self.box_vote = box_vote_settings or BoxVoteSettings()

    @classmethod
    def from_cfg(cls, cfg) -> BoxPostProcessor:
        soft = cfg.TEST.SOFT_NMS
        vote = cfg.TEST.BBOX_VOTE
        return cls(
            num_classes=cfg.MODEL.NUM_CLASSES,
            score_thresh=cfg.TEST.SCORE_THRESH,
            nms_thresh=cfg.TEST.NMS,
            detections_per_image=cfg.TEST.DETECTIONS_PER_IM,
            bbox_reg_weights=tuple(cfg.MODEL.BBOX_REG_WEIGHTS),
            plus_one=cfg.MODEL.BOX_PLUS_ONE,
            class_agnostic_bbox_reg=cfg.MODEL.CLS_AGNOSTIC_BBOX_REG,
            min_size=cfg.TEST.BOX_MIN_SIZE,
            keep_ties=cfg.TEST.DETECTIONS_KEEP_TIES,
            # Detectron's Soft-NMS uses TEST.NMS as its overlap threshold and drops boxes
            # decayed below 1e-4
            soft_nms_settings=SoftNMSSettings(soft.ENABLED, soft.METHOD, soft.SIGMA, cfg.TEST.NMS, 0.0001),
            box_vote_settings=BoxVoteSettings(
                vote.ENABLED, vote.VOTE_TH, vote.SCORING_METHOD, vote.SCORING_METHOD_BETA
            ),
        )

    def decode(
        self, bbox_pred: torch.Tensor, boxes: torch.Tensor, height: float, width: float
    ) -> torch.Tensor:
        """Class-specific boxes [R, 4 * num_classes] clipped to (height, width)."""
        if self.class_agnostic_bbox_reg:
            bbox_pred = bbox_pred[:, -4:].repeat(1, self.num_classes)
        decoded = decode_boxes(boxes, bbox_pred, self.bbox_reg_weights, self.plus_one)
        return clip_boxes(decoded, height, width, self.plus_one)

    def __call__(
        self,
        cls_score: torch.Tensor,
        bbox_pred: torch.Tensor,
        boxes_per_image: list[torch.Tensor],
        image_sizes: list[tuple[float, float]],
    ) -> list[Detections]:
        """Detections per image; `boxes_per_image` are the RoIs in the space of `image_sizes`."""
        probs = F.softmax(cls_score, dim=1)
        counts = [b.shape[0] for b in boxes_per_image]
        results = []
        for p, d, boxes, (h, w) in zip(
            probs.split(counts), bbox_pred.split(counts), boxes_per_image, image_sizes
        ):
            results.append(self.single_image(p, self.decode(d, boxes, h, w)))
        return results

    def single_image(self, probs: torch.Tensor, boxes: torch.Tensor) -> Detections:
        """Threshold, NMS and cap one image's class probabilities [R, C] and boxes [R, 4C]."""
        num_rois = probs.shape[0]
        boxes = boxes.view(num_rois, -1, 4)[:, 1:].reshape(-1, 4)
        scores = probs[:, 1:].reshape(-1)
        classes = torch.arange(1, self.num_classes, device=probs.device).repeat(num_rois)
        keep = scores > self.score_thresh
        if self.min_size > 0:
            keep &= nonempty_box_mask(boxes, self.min_size, plus_one=self.plus_one)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]

        if self.soft_nms.enabled:
            boxes, scores, classes = self._soft_nms(boxes, scores, classes)
        else:
            kept = ops.batched_nms(boxes, scores, classes, self.nms_thresh, plus_one=self.plus_one)
            if self.box_vote.enabled:
                boxes, scores, classes = self._vote(boxes[kept], scores[kept], classes[kept], boxes, scores, classes)
            else:
                boxes, scores, classes = boxes[kept], scores[kept], classes[kept]
        return self._limit(boxes, scores, classes)

    def _soft_nms(self, boxes, scores, classes):
        out_boxes, out_scores, out_classes = [], [], []
        for cls in torch.unique(classes).tolist():
            idx = torch.nonzero(classes == cls, as_tuple=False).squeeze(1)
            kept, new_scores = soft_nms(
                boxes[idx],
                scores[idx],
                sigma=self.soft_nms.sigma,
                overlap_thresh=self.soft_nms.overlap_thresh,
                score_thresh=self.soft_nms.score_thresh,
                method=self.soft_nms.method,
                plus_one=self.plus_one,
            )
            kept_boxes = boxes[idx][kept]
            if self.box_vote.enabled:
                kept_boxes, new_scores = box_voting(
                    kept_boxes, new_scores, boxes[idx], scores[idx], self.box_vote.vote_thresh,
                    self.box_vote.scoring_method, self.box_vote.beta, self.plus_one,
                )
            out_boxes.append(kept_boxes)
            out_scores.append(new_scores)
            out_classes.append(classes[idx][kept])
        if not out_boxes:
            return boxes, scores, classes
        return torch.cat(out_boxes), torch.cat(out_scores), torch.cat(out_classes)

    def _vote(self, top_boxes, top_scores, top_classes, all_boxes, all_scores, all_classes):
        """Box voting within each class (boxes of other classes never vote)."""
        if top_boxes.shape[0] == 0:
            return top_boxes, top_scores, top_classes
        voted, new_scores = box_voting(
            top_boxes,
            top_scores,
            all_boxes,
            all_scores,
            self.box_vote.vote_thresh,
            self.box_vote.scoring_method,
            self.box_vote.beta,
            self.plus_one,
            top_classes=top_classes,
            all_classes=all_classes,
        )
        return voted, new_scores, top_classes

    def _limit(self, boxes, scores, classes) -> Detections:
        order = torch.argsort(scores, descending=True, stable=True)
        limit = self.detections_per_image
        if limit > 0 and order.numel() > limit:
            if self.keep_ties:
                kth = scores[order[limit - 1]]
                order = order[scores[order] >= kth]
            else:
                order = order[:limit]
        return Detections(boxes=boxes[order], scores=scores[order], classes=classes[order])
