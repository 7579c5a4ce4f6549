"""RPN proposals: Detectron's GenerateProposals + FPN collect, or torchvision's filter_proposals.

Per image: on each level take the `pre_nms_top_n` highest objectness logits, decode their
anchors with weights (1, 1, 1, 1), clip to the image, drop small boxes, run NMS within each
level, then keep the `post_nms_top_n` best of all levels (FPN collect, per image).

Detectron also cuts every level to `post_nms_top_n` after its NMS before collecting; the
top `post_nms_top_n` of all levels are always among those, so the result is the same.
Detectron collected over the whole minibatch during training; here it is per image.

The two conventions differ in named settings only:
  Detectron:   plus_one=True,  min_size_rule='detectron',   min_size=TRAIN/TEST.RPN_MIN_SIZE
  torchvision: plus_one=False, min_size_rule='torchvision', min_size=1e-3, score_thresh
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pydetectron.ops import batched_nms
from pydetectron.structures.boxes import DEFAULT_SCALE_CLAMP, decode_boxes
from pydetectron.utils.settings_repr import SettingsRepr

from .heads import flatten_rpn_outputs

MIN_SIZE_RULES = ("detectron", "torchvision")


def check_im_info(im_info: torch.Tensor, num_images: int) -> None:
    """Raise ValueError unless im_info is [num_images, 3] (height, width, scale)."""
    if not isinstance(im_info, torch.Tensor) or im_info.dim() != 2 or im_info.shape[1] != 3:
        shape = tuple(im_info.shape) if isinstance(im_info, torch.Tensor) else type(im_info).__name__
        raise ValueError(f"im_info must be a [N, 3] tensor of (height, width, scale), got {shape}")
    if im_info.shape[0] != num_images:
        raise ValueError(f"im_info has {im_info.shape[0]} rows but the features hold {num_images} images")


class ProposalGenerator(SettingsRepr):
    """Turns RPN outputs into per-image proposals; settings are fixed at construction.

    pre_nms_top_n: boxes kept per level and image before NMS (<= 0: all).
    post_nms_top_n: boxes kept per image after NMS over all levels (<= 0: all).
    nms_thresh: IoU threshold of the NMS run within each level (<= 0: no NMS).
    min_size: smallest side kept, read by `min_size_rule`:
      'detectron': sides measured in the original image, (x2 - x1) / im_scale (+1), must be
        >= max(min_size, 1), and the box centre must lie inside the image;
      'torchvision': sides (x2 - x1) (+1) in network-input pixels must be >= min_size.
    score_thresh: proposals with sigmoid objectness below it are dropped (torchvision).
    plus_one: Detectron's +1 convention in decode, clip, sizes and NMS.
    bbox_xform_clip: cap on the predicted log-scale deltas dw, dh.
    """

    def __init__(
        self,
        pre_nms_top_n: int,
        post_nms_top_n: int,
        nms_thresh: float,
        min_size: float = 0.0,
        min_size_rule: str = "detectron",
        score_thresh: float = 0.0,
        plus_one: bool = True,
        bbox_xform_clip: float = DEFAULT_SCALE_CLAMP,
    ) -> None:
        if min_size_rule not in MIN_SIZE_RULES:
            raise ValueError(f"min_size_rule must be one of {MIN_SIZE_RULES}, got {min_size_rule!r}")
        self.pre_nms_top_n = int(pre_nms_top_n)
        self.post_nms_top_n = int(post_nms_top_n)
        self.nms_thresh = float(nms_thresh)
        self.min_size = float(min_size)
        self.min_size_rule = min_size_rule
        self.score_thresh = float(score_thresh)
        self.plus_one = bool(plus_one)
        self.bbox_xform_clip = float(bbox_xform_clip)

    @torch.no_grad()
    def __call__(
        self,
        cls_logits: Sequence[torch.Tensor],
        bbox_deltas: Sequence[torch.Tensor],
        anchors: Sequence[torch.Tensor],
        im_info: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Proposals [Ri, 4] and their objectness probabilities [Ri] for each image.

        cls_logits[l] is [N, A, H, W], bbox_deltas[l] [N, 4A, H, W], anchors[l] [H*W*A, 4]
        (location-major, then anchor), im_info [N, 3] (height, width, scale). Levels may come
        in any order; proposals are sorted by decreasing score.
        """
        if len(anchors) != len(cls_logits):
            raise ValueError(f"got {len(anchors)} anchor levels for {len(cls_logits)} feature levels")
        logits, deltas = flatten_rpn_outputs([c.detach() for c in cls_logits], [d.detach() for d in bbox_deltas])
        # Half-precision outputs (AMP) are decoded in float32: fp16 cannot hold pixel coordinates.
        compute_dtype = torch.promote_types(deltas.dtype, torch.float32)
        logits, deltas = logits.to(compute_dtype), deltas.to(compute_dtype)
        num_images = logits.shape[0]
        check_im_info(im_info, num_images)
        im_info = im_info.to(device=deltas.device, dtype=compute_dtype)
        boxes, top_logits, levels = self._top_boxes_per_level(logits, deltas, anchors)
        scores = torch.sigmoid(top_logits)
        boxes = self._clip(boxes, im_info)
        keep = self._keep_mask(boxes, scores, im_info)
        proposals, proposal_scores = [], []
        for image in range(num_images):
            index = torch.nonzero(keep[image], as_tuple=False).squeeze(1)
            image_boxes, image_scores = boxes[image, index], scores[image, index]
            if self.nms_thresh > 0:
                order = batched_nms(image_boxes, image_scores, levels[index], self.nms_thresh, plus_one=self.plus_one)
            else:
                order = torch.sort(image_scores, descending=True, stable=True).indices
            if self.post_nms_top_n > 0:
                order = order[: self.post_nms_top_n]
            proposals.append(image_boxes[order])
            proposal_scores.append(image_scores[order])
        return proposals, proposal_scores

    def _top_boxes_per_level(
        self, logits: torch.Tensor, deltas: torch.Tensor, anchors: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decoded boxes [N, R, 4], logits [N, R] and level ids [R] of each level's top-k."""
        num_images = logits.shape[0]
        boxes, top_logits, levels = [], [], []
        start = 0
        for level, level_anchors in enumerate(anchors):
            count = level_anchors.shape[0]
            level_logits = logits[:, start : start + count]
            level_deltas = deltas[:, start : start + count]
            start += count
            k = count if self.pre_nms_top_n <= 0 else min(self.pre_nms_top_n, count)
            values, index = level_logits.topk(k, dim=1)
            picked_deltas = torch.gather(level_deltas, 1, index[:, :, None].expand(-1, -1, 4))
            picked_anchors = level_anchors.to(device=deltas.device, dtype=deltas.dtype)[index]
            decoded = decode_boxes(
                picked_anchors.reshape(-1, 4),
                picked_deltas.reshape(-1, 4),
                plus_one=self.plus_one,
                scale_clamp=self.bbox_xform_clip,
            )
            boxes.append(decoded.view(num_images, k, 4))
            top_logits.append(values)
            levels.append(torch.full((k,), level, dtype=torch.int64, device=logits.device))
        if start != logits.shape[1]:
            raise ValueError(f"anchors cover {start} rows but the RPN outputs have {logits.shape[1]}")
        return torch.cat(boxes, dim=1), torch.cat(top_logits, dim=1), torch.cat(levels)

    def _clip(self, boxes: torch.Tensor, im_info: torch.Tensor) -> torch.Tensor:
        """Clip [N, R, 4] boxes to each image's [0, W (-1)] x [0, H (-1)]."""
        off = 1.0 if self.plus_one else 0.0
        max_x = (im_info[:, 1] - off)[:, None, None]
        max_y = (im_info[:, 0] - off)[:, None, None]
        x = torch.minimum(boxes[..., 0::2].clamp(min=0), max_x)
        y = torch.minimum(boxes[..., 1::2].clamp(min=0), max_y)
        return torch.stack((x, y), dim=-1).reshape(boxes.shape)

    def _keep_mask(self, boxes: torch.Tensor, scores: torch.Tensor, im_info: torch.Tensor) -> torch.Tensor:
        """[N, R] boxes that pass the size rule and the score threshold."""
        off = 1.0 if self.plus_one else 0.0
        widths = boxes[..., 2] - boxes[..., 0]
        heights = boxes[..., 3] - boxes[..., 1]
        if self.min_size_rule == "detectron":
            im_scale = im_info[:, 2:3]
            min_size = max(self.min_size, 1.0)
            keep = (widths / im_scale + off >= min_size) & (heights / im_scale + off >= min_size)
            ctr_x = boxes[..., 0] + (widths + off) / 2.0
            ctr_y = boxes[..., 1] + (heights + off) / 2.0
            keep &= (ctr_x < im_info[:, 1:2]) & (ctr_y < im_info[:, 0:1])
        else:
            keep = (widths + off >= self.min_size) & (heights + off >= self.min_size)
        if self.score_thresh > 0:
            keep &= scores >= self.score_thresh
        return keep
