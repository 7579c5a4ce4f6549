"""The keypoint branch (Keypoint R-CNN): RoI sampling, heatmap targets and loss, decoding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron.structures.boxes import box_iou
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth
from pydetectron.structures.keypoints import (
    heatmaps_to_keypoints,
    keypoints_inside_boxes,
    keypoints_to_heatmap_targets,
    nms_oks,
)

from ..levels import ShapeSpec
from .box_branch import BoxBranch, rois_with_batch_index
from .box_sampling import SampledRoIs, random_subset
from .branch import ROI_BRANCHES, ImageInfo, PooledHeadBranch
from .head_registries import KEYPOINT_HEADS
from .keypoint_heads import KeypointOutputs
from .roi_pooler import RoIPooler


@ROI_BRANCHES.register("keypoint")
class KeypointBranch(PooledHeadBranch):
    """Keypoint heatmaps for sampled RoIs (training) and final detections (inference).

    Training RoIs are drawn as Detectron does: among the box branch's candidates (proposals
    and gt boxes) with IoU >= `fg_thresh` whose matched gt has a visible keypoint inside the
    candidate, at most `fg_per_image` per image. The loss is the spatial softmax cross-entropy
    of each visible keypoint's cell, divided by the visible count (`normalize_by_visible`) or
    by images * `rois_per_image` * `fg_fraction` * K; batches with no more than `min_visible`
    visible keypoints contribute no keypoint loss (Detectron skipped them).
    """

    def __init__(
        self,
        in_features: Sequence[str],
        pooler: RoIPooler,
        head: nn.Module,
        outputs: KeypointOutputs,
        heatmap_size: int,
        fg_thresh: float = 0.5,
        rois_per_image: int = 512,
        fg_fraction: float = 0.25,
        plus_one: bool = True,
        normalize_by_visible: bool = True,
        min_visible: int = 20,
        loss_weight: float = 1.0,
        inference_min_size: int = 0,
        nms_oks_thresh: float = 0.0,
        decode_space: str = "original",
    ) -> None:
        super().__init__(in_features, pooler, head, outputs)
        self.heatmap_size = int(heatmap_size)
        self.fg_thresh = float(fg_thresh)
        self.rois_per_image = int(rois_per_image)
        self.fg_fraction = float(fg_fraction)
        self.plus_one = bool(plus_one)
        self.normalize_by_visible = bool(normalize_by_visible)
        self.min_visible = int(min_visible)
        self.loss_weight = float(loss_weight)
        self.inference_min_size = int(inference_min_size)
        self.nms_oks_thresh = float(nms_oks_thresh)
        self.decode_space = decode_space

    @classmethod
    def from_cfg(cls, cfg, input_shape: Mapping[str, ShapeSpec], box_branch: BoxBranch) -> KeypointBranch:
        """KRCNN.* keys, TRAIN.FG_THRESH / BATCH_SIZE_PER_IM / FG_FRACTION, MODEL.BOX_PLUS_ONE."""
        krcnn = cfg.KRCNN
        if int(krcnn.NUM_KEYPOINTS) <= 0:
            raise ValueError("MODEL.KEYPOINTS_ON needs KRCNN.NUM_KEYPOINTS (17 for COCO)")
        in_features = box_branch.in_features
        dim_in = input_shape[in_features[0]].channels
        strides = [input_shape[name].stride for name in in_features]
        pooler = RoIPooler.from_cfg(cfg, strides, "KRCNN")
        head = KEYPOINT_HEADS.build(krcnn.ROI_KEYPOINTS_HEAD, cfg, dim_in)
        outputs = KeypointOutputs(
            head.dim_out,
            int(krcnn.NUM_KEYPOINTS),
            use_deconv=bool(krcnn.USE_DECONV),
            deconv_dim=int(krcnn.DECONV_DIM),
            deconv_kernel=int(krcnn.DECONV_KERNEL),
            use_deconv_output=bool(krcnn.USE_DECONV_OUTPUT),
            up_scale=int(krcnn.UP_SCALE),
            upsample_mode=str(krcnn.UPSAMPLE_MODE),
            fill=str(krcnn.CONV_INIT),
        )
        expected = int(krcnn.ROI_XFORM_RESOLUTION) * max(int(krcnn.UP_SCALE), 1)
        expected *= (2 if krcnn.USE_DECONV else 1) * (2 if krcnn.USE_DECONV_OUTPUT else 1)
        if int(krcnn.HEATMAP_SIZE) != expected:
            raise ValueError(
                f"KRCNN.HEATMAP_SIZE is {krcnn.HEATMAP_SIZE} but the head outputs {expected}x{expected} heatmaps "
                "(ROI_XFORM_RESOLUTION x UP_SCALE x 2 per USE_DECONV / USE_DECONV_OUTPUT)"
            )
        return cls(
            in_features,
            pooler,
            head,
            outputs,
            heatmap_size=expected,
            fg_thresh=float(cfg.TRAIN.FG_THRESH),
            rois_per_image=int(cfg.TRAIN.BATCH_SIZE_PER_IM),
            fg_fraction=float(cfg.TRAIN.FG_FRACTION),
            plus_one=bool(cfg.MODEL.BOX_PLUS_ONE),
            normalize_by_visible=bool(krcnn.NORMALIZE_BY_VISIBLE_KEYPOINTS),
            min_visible=int(krcnn.MIN_KEYPOINT_COUNT_FOR_VALID_MINIBATCH),
            loss_weight=float(krcnn.LOSS_WEIGHT),
            inference_min_size=int(krcnn.INFERENCE_MIN_SIZE),
            nms_oks_thresh=0.3 if krcnn.NMS_OKS else 0.0,
            decode_space=box_branch.decode_space,
        )

    def heatmap_logits(self, features: Mapping[str, torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """Heatmap logits [R, K, S, S] of RoIs [R, 5] in input pixels."""
        return self.head_outputs(features, rois)

    def sample(self, candidates: torch.Tensor, target: GroundTruth) -> tuple[torch.Tensor, torch.Tensor]:
        """(RoIs [R, 4], matched gt keypoints [R, K, 3]) of one image."""
        keypoints = target.keypoints
        if keypoints is None:
            raise ValueError("the keypoint branch needs ground-truth keypoints (MODEL.KEYPOINTS_ON loads them)")
        usable = torch.nonzero(~target.is_crowd, as_tuple=True)[0]
        if usable.numel() == 0 or candidates.shape[0] == 0:
            return candidates[:0], keypoints[:0]
        iou = box_iou(candidates, target.boxes[usable], plus_one=self.plus_one)
        best_iou, best = iou.max(dim=1)
        matched = keypoints[usable][best]
        visible_inside = keypoints_inside_boxes(matched, candidates).any(dim=1)
        quota = int(round(self.fg_fraction * self.rois_per_image))
        chosen = random_subset((best_iou >= self.fg_thresh) & visible_inside, quota, None)
        return candidates[chosen], matched[chosen]

    def losses(
        self, features: Mapping[str, torch.Tensor], samples: SampledRoIs, targets: Sequence[GroundTruth]
    ) -> dict[str, torch.Tensor]:
        picked = [self.sample(c, t) for c, t in zip(samples.candidates, targets)]
        rois = [boxes for boxes, _ in picked]
        logits = self.heatmap_logits(features, rois_with_batch_index(rois))
        num_rois, num_keypoints = logits.shape[:2]
        if num_rois == 0:
            return {"loss_kps": logits.sum() * 0.0}
        cells, valid = zip(*(keypoints_to_heatmap_targets(kps, boxes, self.heatmap_size) for boxes, kps in picked))
        cells, valid = torch.cat(cells).view(-1), torch.cat(valid).view(-1)
        terms = F.cross_entropy(logits.float().view(num_rois * num_keypoints, -1), cells, reduction="none")
        num_visible = valid.sum()
        total = torch.where(valid, terms, 0.0).sum()
        if int(num_visible) <= self.min_visible:
            return {"loss_kps": total * 0.0}
        if self.normalize_by_visible:
            loss = total / num_visible
        else:
            loss = total / (len(targets) * self.rois_per_image * self.fg_fraction * num_keypoints)
        return {"loss_kps": loss * self.loss_weight}

    def predict(
        self, features: Mapping[str, torch.Tensor], detections: list[Detections], images: Sequence[ImageInfo]
    ) -> None:
        self.finish(detections, self.roi_outputs(features, detections), images)

    def roi_outputs(self, features: Mapping[str, torch.Tensor], detections: Sequence[Detections]) -> list[torch.Tensor]:
        """Heatmap logits [N, K, S, S] of each image's detections, from their `input_boxes`."""
        boxes = [det.input_boxes for det in detections]
        num_keypoints = self.outputs.score.out_channels
        if sum(b.shape[0] for b in boxes) == 0:
            size = self.heatmap_size
            return [b.new_zeros((0, num_keypoints, size, size)) for b in boxes]
        logits = self.heatmap_logits(features, rois_with_batch_index(boxes))
        return list(logits.split([b.shape[0] for b in boxes]))

    @staticmethod
    def flip_roi_outputs(heatmaps: torch.Tensor, flip_pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Heatmaps of a horizontally flipped view in the unflipped frame: left/right keypoints swapped."""
        order = list(range(heatmaps.shape[1]))
        for left, right in flip_pairs:
            order[left], order[right] = right, left
        return heatmaps[:, order].flip(-1)

    def finish(
        self, detections: list[Detections], heatmaps: Sequence[torch.Tensor], images: Sequence[ImageInfo]
    ) -> None:
        """Decode each image's heatmaps into `detections[i].keypoints`; OKS-NMS may drop detections."""
        for index, (maps, image) in enumerate(zip(heatmaps, images)):
            det = detections[index]
            if maps.shape[0] == 0:
                det.keypoints = det.boxes.new_zeros((0, maps.shape[1], 3))
                continue
            if self.decode_space == "original":  # Detectron: decode on the boxes in original pixels
                keypoints = heatmaps_to_keypoints(maps, det.boxes, self.inference_min_size)
            else:  # torchvision: decode in input pixels, then rescale
                keypoints = heatmaps_to_keypoints(maps, det.input_boxes, self.inference_min_size)
                keypoints[:, :, 0] *= image.original_width / image.width
                keypoints[:, :, 1] *= image.original_height / image.height
            det.keypoints = keypoints[:, :, :3]
            if self.nms_oks_thresh > 0:
                detections[index] = det.select(nms_oks(keypoints, det.boxes, self.nms_oks_thresh))
