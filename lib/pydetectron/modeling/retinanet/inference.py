"""RetinaNet detections: per-level top-k above a threshold, decode, class-wise NMS, a cap.

Detectron's test_retinanet.im_detect_bbox and torchvision's RetinaNet.postprocess_detections,
batched over images on the outputs' device. Per level: class probabilities (sigmoid, or the
per-anchor softmax without its background column), the (anchor, class) pairs scoring above
`score_thresh` (`coarsest_score_thresh` on the coarsest level: Detectron takes every score
there so that small images keep candidates), at most `pre_nms_top_n` of them, their boxes
decoded from the anchors with weights (1, 1, 1, 1). Then, per image over all levels: NMS
within each class (or Soft-NMS), and the `detections_per_image` best.

`output_space` says where boxes go to the original image (TEST.BOX_DECODE_SPACE):
  'original'  divide by the image scale, clip to the original image, NMS there (Detectron);
  'input'     clip to the network-input image, NMS there, then rescale each axis by the
              original / input size ratio (torchvision).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pydetectron import ops
from pydetectron.structures.boxes import DEFAULT_SCALE_CLAMP, clip_boxes, decode_boxes
from pydetectron.structures.detections import Detections
from pydetectron.structures.nms_variants import soft_nms

from ..roi_heads.box_postprocess import SoftNMSSettings
from ..roi_heads.branch import ImageInfo
from .head import flatten_dense_outputs
from .layout import OutputLayout

OUTPUT_SPACES = ("original", "input")


class RetinaNetPostProcessor(OutputLayout):
    """Turns RetinaNet head outputs into `Detections` (boxes in original-image pixels).

    Args:
        num_classes: C, classes including background.
        softmax, background_logit, class_specific_bbox: the head's layout (see `RetinaNetLoss`).
        score_thresh: RETINANET.INFERENCE_TH (scores must be above it).
        coarsest_score_thresh: RETINANET.COARSEST_INFERENCE_TH, used on the last (coarsest) level.
        pre_nms_top_n: RETINANET.PRE_NMS_TOP_N candidates per level and image (<= 0: all).
        nms_thresh: TEST.NMS. detections_per_image: TEST.DETECTIONS_PER_IM (<= 0: all).
        apply_bbox_reg: TEST.BBOX_REG (False: the anchors themselves are the boxes).
        plus_one: MODEL.BOX_PLUS_ONE. bbox_xform_clip: BBOX_XFORM_CLIP.
        output_space: see the module docstring. soft_nms: TEST.SOFT_NMS settings.
    """

    def __init__(
        self,
        num_classes: int,
        softmax: bool = False,
        background_logit: bool = False,
        class_specific_bbox: bool = False,
        score_thresh: float = 0.05,
        coarsest_score_thresh: float = 0.0,
        pre_nms_top_n: int = 1000,
        nms_thresh: float = 0.5,
        detections_per_image: int = 100,
        apply_bbox_reg: bool = True,
        plus_one: bool = True,
        bbox_xform_clip: float = DEFAULT_SCALE_CLAMP,
        output_space: str = "original",
        soft_nms: SoftNMSSettings | None = None,
    ) -> None:
        if output_space not in OUTPUT_SPACES:
            raise ValueError(f"output_space must be one of {OUTPUT_SPACES}, got {output_space!r}")
        self.set_layout(num_classes, softmax, background_logit, class_specific_bbox)
        self.score_thresh = float(score_thresh)
        self.coarsest_score_thresh = float(coarsest_score_thresh)
        self.pre_nms_top_n = int(pre_nms_top_n)
        self.nms_thresh = float(nms_thresh)
        self.detections_per_image = int(detections_per_image)
        self.apply_bbox_reg = bool(apply_bbox_reg)
        self.plus_one = bool(plus_one)
        self.bbox_xform_clip = float(bbox_xform_clip)
        self.output_space = output_space
        self.soft_nms = soft_nms or SoftNMSSettings()

    @torch.no_grad()
    def __call__(
        self,
        cls_logits: Sequence[torch.Tensor],
        bbox_pred: Sequence[torch.Tensor],
        anchors: Sequence[torch.Tensor],
        images: Sequence[ImageInfo],
    ) -> list[Detections]:
        """cls_logits[l] [N, A * K, H, W], bbox_pred[l] [N, A * B, H, W], anchors[l] [H * W * A, 4]
        for levels finest first; `images` the N images' sizes and scales."""
        if not (len(cls_logits) == len(bbox_pred) == len(anchors)) or not anchors:
            raise ValueError(
                f"need one cls_logits, bbox_pred and anchor tensor per level, got "
                f"{len(cls_logits)}, {len(bbox_pred)} and {len(anchors)}"
            )
        if len(images) != cls_logits[0].shape[0]:
            raise ValueError(f"{len(images)} images for a batch of {cls_logits[0].shape[0]}")
        last = len(anchors) - 1
        levels = [
            self._level_candidates(logits, deltas, level_anchors, self.coarsest_score_thresh if i == last else None)
            for i, (logits, deltas, level_anchors) in enumerate(zip(cls_logits, bbox_pred, anchors))
        ]
        boxes, scores, classes, valid = (torch.cat(parts, dim=1) for parts in zip(*levels))
        return [
            self._detect_image(boxes[i][valid[i]], scores[i][valid[i]], classes[i][valid[i]], image)
            for i, image in enumerate(images)
        ]

    def _level_candidates(
        self, logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, thresh: float | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes [N, k, 4] (input pixels), scores [N, k], classes [N, k] (1-based) and which of
        the k are candidates [N, k], for one level."""
        thresh = self.score_thresh if thresh is None else thresh
        flat_logits, flat_deltas = flatten_dense_outputs([logits], [deltas], self.num_logits, self.box_dim)
        # Half-precision outputs (AMP) are scored and decoded in float32.
        compute_dtype = torch.promote_types(flat_deltas.dtype, torch.float32)
        flat_logits, flat_deltas = flat_logits.to(compute_dtype), flat_deltas.to(compute_dtype)
        num_images, num_anchors = flat_logits.shape[:2]
        if anchors.shape != (num_anchors, 4):
            raise ValueError(f"a level has {num_anchors} anchor rows of outputs but anchors {tuple(anchors.shape)}")
        if self.softmax:
            probs = torch.softmax(flat_logits, dim=2)[..., 1:]
        else:
            probs = torch.sigmoid(flat_logits)
            probs = probs[..., 1:] if self.background_logit else probs
        num_fg_classes = probs.shape[2]
        scores = probs.reshape(num_images, -1)
        k = scores.shape[1] if self.pre_nms_top_n <= 0 else min(self.pre_nms_top_n, scores.shape[1])
        top_scores, index = scores.masked_fill(scores <= thresh, -1.0).topk(k, dim=1)
        anchor_index = torch.div(index, num_fg_classes, rounding_mode="floor")
        classes = index % num_fg_classes + 1
        picked_anchors = anchors.to(compute_dtype)[anchor_index]
        if self.apply_bbox_reg:
            if self.class_specific_bbox:  # deltas rows are (anchor, class): row index = score index
                picked = torch.gather(flat_deltas.view(num_images, -1, 4), 1, index[..., None].expand(-1, -1, 4))
            else:
                picked = torch.gather(flat_deltas, 1, anchor_index[..., None].expand(-1, -1, 4))
            boxes = decode_boxes(
                picked_anchors.reshape(-1, 4),
                picked.reshape(-1, 4),
                plus_one=self.plus_one,
                scale_clamp=self.bbox_xform_clip,
            ).view(num_images, k, 4)
        else:
            boxes = picked_anchors
        return boxes, top_scores, classes, top_scores > thresh

    def _detect_image(
        self, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, image: ImageInfo
    ) -> Detections:
        """NMS and the cap for one image's candidates (boxes in input pixels)."""
        if self.output_space == "original":
            boxes = clip_boxes(boxes / image.scale, image.original_height, image.original_width, self.plus_one)
        else:
            boxes = clip_boxes(boxes, image.height, image.width, self.plus_one)
        if self.soft_nms.enabled:
            boxes, scores, classes = self._soft_nms(boxes, scores, classes)
        else:
            keep = ops.batched_nms(boxes, scores, classes, self.nms_thresh, plus_one=self.plus_one)
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        order = torch.argsort(scores, descending=True, stable=True)
        if self.detections_per_image > 0:
            order = order[: self.detections_per_image]
        boxes, scores, classes = boxes[order], scores[order], classes[order]
        if self.output_space == "original":
            return Detections(boxes, scores, classes, input_boxes=boxes * image.scale)
        ratio = boxes.new_tensor([image.original_width / image.width, image.original_height / image.height])
        return Detections(boxes * ratio.repeat(2), scores, classes, input_boxes=boxes)

    def _soft_nms(
        self, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Soft-NMS within each class (Detectron's TEST.SOFT_NMS for RetinaNet)."""
        out_boxes, out_scores, out_classes = [boxes[:0]], [scores[:0]], [classes[:0]]
        for cls in torch.unique(classes).tolist():
            index = torch.nonzero(classes == cls, as_tuple=True)[0]
            kept, new_scores = soft_nms(
                boxes[index],
                scores[index],
                sigma=self.soft_nms.sigma,
                overlap_thresh=self.soft_nms.overlap_thresh,
                score_thresh=self.soft_nms.score_thresh,
                method=self.soft_nms.method,
                plus_one=self.plus_one,
            )
            out_boxes.append(boxes[index][kept])
            out_scores.append(new_scores)
            out_classes.append(classes[index][kept])
        return torch.cat(out_boxes), torch.cat(out_scores), torch.cat(out_classes)
