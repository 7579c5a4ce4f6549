"""The mask branch (Mask R-CNN): mask head + output layer, targets, loss and paste-back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron import ops
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth
from pydetectron.structures.mask_paste import paste_masks
from pydetectron.structures.polygon_masks import PolygonMasks

from ..levels import ShapeSpec
from .box_branch import BoxBranch, rois_with_batch_index
from .box_sampling import SampledRoIs
from .branch import ROI_BRANCHES, ImageInfo, PooledHeadBranch
from .head_registries import MASK_HEADS
from .mask_heads import MaskOutputs
from .roi_pooler import RoIPooler


def mask_targets(masks: PolygonMasks | torch.Tensor, boxes: torch.Tensor, gt_index: torch.Tensor, size: int):
    """[R, size, size] float 0/1 targets of gt instances `gt_index` cropped to `boxes` (input pixels).

    Polygons are rasterised inside each box (Detectron's polys_to_mask_wrt_box); bitmaps
    [G, H, W] are cropped and resized with RoIAlign and thresholded at 0.5.
    """
    if isinstance(masks, PolygonMasks):
        return masks.rasterize_in_boxes(boxes, gt_index, size)
    if boxes.shape[0] == 0:
        return boxes.new_zeros((0, size, size))
    bitmaps = masks.to(device=boxes.device, dtype=torch.float32)[:, None]
    rois = torch.cat((gt_index.to(boxes.dtype)[:, None], boxes), dim=1)
    return (ops.roi_align(bitmaps, rois, size, 1.0, 0, True)[:, 0] >= 0.5).to(torch.float32)


@ROI_BRANCHES.register("mask")
class MaskBranch(PooledHeadBranch):
    """Masks for the box branch's foreground RoIs (training) and final detections (inference).

    Args:
        in_features: body maps pooled from; pooler, head, outputs: RoI transform, mask head
            (ends with `conv5_mask`), mask logits layer.
        resolution: M of the M x M mask targets / predictions (MRCNN.RESOLUTION).
        loss_weight: MRCNN.WEIGHT_LOSS_MASK; threshold: MRCNN.THRESH_BINARIZE.
        share_box_map: the head runs on the box head's res5 map in training (v0upshare).
    """

    def __init__(
        self,
        in_features: Sequence[str],
        pooler: RoIPooler,
        head: nn.Module,
        outputs: MaskOutputs,
        resolution: int,
        loss_weight: float = 1.0,
        threshold: float = 0.5,
        share_box_map: bool = False,
    ) -> None:
        super().__init__(in_features, pooler, head, outputs)
        self.resolution = int(resolution)
        self.loss_weight = float(loss_weight)
        self.threshold = float(threshold)
        self.share_box_map = share_box_map

    @classmethod
    def from_cfg(cls, cfg, input_shape: Mapping[str, ShapeSpec], box_branch: BoxBranch) -> MaskBranch:
        """MRCNN.* keys; the mask branch pools from the same maps as the box branch."""
        in_features = box_branch.in_features
        dim_in = input_shape[in_features[0]].channels
        strides = [input_shape[name].stride for name in in_features]
        pooler = RoIPooler.from_cfg(cfg, strides, "MRCNN")
        head = MASK_HEADS.build(cfg.MRCNN.ROI_MASK_HEAD, cfg, dim_in, box_branch.head)
        mrcnn = cfg.MRCNN
        outputs = MaskOutputs(
            head.dim_out,
            int(cfg.MODEL.NUM_CLASSES),
            int(mrcnn.RESOLUTION),
            class_specific=bool(mrcnn.CLS_SPECIFIC_MASK),
            fill=str(mrcnn.CONV_INIT),
            upsample_ratio=int(mrcnn.UPSAMPLE_RATIO),
            use_fc=bool(mrcnn.USE_FC_OUTPUT),
        )
        share = bool(getattr(head, "shared_res5", False))
        if share:
            box_branch.keep_head_map = True
        return cls(
            in_features,
            pooler,
            head,
            outputs,
            int(mrcnn.RESOLUTION),
            float(mrcnn.WEIGHT_LOSS_MASK),
            float(mrcnn.THRESH_BINARIZE),
            share_box_map=share,
        )

    def mask_logits(self, features: Mapping[str, torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """Mask logits [R, C or 1, M, M] of RoIs [R, 5] in input pixels."""
        return self.head_outputs(features, rois)

    def losses(
        self, features: Mapping[str, torch.Tensor], samples: SampledRoIs, targets: Sequence[GroundTruth]
    ) -> dict[str, torch.Tensor]:
        foreground = torch.nonzero(samples.labels > 0, as_tuple=True)[0]
        rois = samples.rois[foreground]
        if self.share_box_map:
            logits = self.outputs(self.head.forward_from_res5(samples.head_map[foreground]))
        else:
            logits = self.mask_logits(features, rois)
        if foreground.numel() == 0:
            return {"loss_mask": logits.sum() * 0.0}
        image_index = rois[:, 0].to(torch.int64)
        gt_index = samples.matched_gt_index[foreground]
        expected = torch.zeros((rois.shape[0], self.resolution, self.resolution), device=rois.device)
        for image, target in enumerate(targets):
            if target.masks is None:
                raise ValueError("the mask branch needs ground-truth masks (MODEL.MASK_ON loads them)")
            here = torch.nonzero(image_index == image, as_tuple=True)[0]
            if here.numel():
                expected[here] = mask_targets(target.masks, rois[here, 1:], gt_index[here], self.resolution)
        classes = samples.labels[foreground] if logits.shape[1] > 1 else torch.zeros_like(foreground)
        chosen = logits[torch.arange(logits.shape[0], device=logits.device), classes]
        loss = F.binary_cross_entropy_with_logits(chosen.float(), expected)
        return {"loss_mask": loss * self.loss_weight}

    def predict(
        self, features: Mapping[str, torch.Tensor], detections: Sequence[Detections], images: Sequence[ImageInfo]
    ) -> None:
        self.finish(detections, self.roi_outputs(features, detections), images)

    def roi_outputs(self, features: Mapping[str, torch.Tensor], detections: Sequence[Detections]) -> list[torch.Tensor]:
        """Soft masks [N, M, M] of each image's detections (their class's channel), from `input_boxes`."""
        boxes = [det.input_boxes for det in detections]
        if sum(b.shape[0] for b in boxes) == 0:
            return [b.new_zeros((0, self.resolution, self.resolution)) for b in boxes]
        logits = self.mask_logits(features, rois_with_batch_index(boxes))
        probs = self._class_probs(logits, torch.cat([det.classes for det in detections]))
        return list(probs.split([b.shape[0] for b in boxes]))

    @staticmethod
    def flip_roi_outputs(probs: torch.Tensor) -> torch.Tensor:
        """Soft masks of a horizontally flipped view, put back in the unflipped image's frame."""
        return probs.flip(-1)

    def finish(
        self, detections: Sequence[Detections], probs: Sequence[torch.Tensor], images: Sequence[ImageInfo]
    ) -> None:
        """Paste each image's soft masks [N, M, M] into `detections[i].masks` (original pixels)."""
        for det, prob, image in zip(detections, probs, images):
            det.masks = paste_masks(prob, det.boxes, image.original_height, image.original_width, self.threshold)

    @staticmethod
    def _class_probs(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        channel = classes if logits.shape[1] > 1 else torch.zeros_like(classes)
        return logits[torch.arange(logits.shape[0], device=logits.device), channel].float().sigmoid()
