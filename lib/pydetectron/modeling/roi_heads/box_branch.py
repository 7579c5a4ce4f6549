"""The box branch: RoI pooling, box head, class scores and deltas, sampling, losses, detections.

Box prediction lives only here: the model's detection step and the test-time augmentation
path both call `class_boxes` (probabilities and class-specific boxes of given RoIs) and
the branch's post-processor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron.nn import WeightMapping, prefix_both, submodule_mappings
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth

from ..levels import ShapeSpec
from .box_heads import FastRCNNOutputs
from .box_loss import fast_rcnn_losses
from .box_postprocess import BoxPostProcessor
from .box_sampling import FastRCNNSampler, SampledRoIs
from .branch import ImageInfo
from .head_registries import BOX_HEADS
from .roi_pooler import RoIPooler

BOX_DECODE_SPACES = ("original", "input")


def rois_with_batch_index(boxes_per_image: Sequence[torch.Tensor]) -> torch.Tensor:
    """[R, 5] (image index, x1, y1, x2, y2) from per-image [Ri, 4] boxes."""
    return torch.cat([torch.cat((torch.full_like(b[:, :1], i), b), dim=1) for i, b in enumerate(boxes_per_image)])


class BoxBranch(nn.Module):
    """Fast R-CNN box branch over the body maps `in_features`.

    Args:
        pooler, head, outputs: RoI transform, box head (vector of `head.dim_out`) and the
            class-score / box-delta layer.
        sampler: training-time RoI sampling; postprocessor: test-time scoring and NMS.
        decode_space: 'original' decodes after dividing RoIs by the image scale and clips to
            the original image (Detectron); 'input' decodes and clips in network-input pixels,
            then rescales each axis to the original size (torchvision).
        keep_head_map: keep the head's last map of the sampled RoIs for a branch that shares it.
    """

    def __init__(
        self,
        in_features: Sequence[str],
        pooler: RoIPooler,
        head: nn.Module,
        outputs: FastRCNNOutputs,
        sampler: FastRCNNSampler,
        postprocessor: BoxPostProcessor,
        decode_space: str = "original",
        keep_head_map: bool = False,
    ) -> None:
        super().__init__()
        if decode_space not in BOX_DECODE_SPACES:
            raise ValueError(f"decode_space must be one of {BOX_DECODE_SPACES}, got {decode_space!r}")
        self.in_features = list(in_features)
        self.pooler = pooler
        self.head = head
        self.outputs = outputs
        self.sampler = sampler
        self.postprocessor = postprocessor
        self.decode_space = decode_space
        self.keep_head_map = keep_head_map

    @classmethod
    def from_cfg(cls, cfg, input_shape: Mapping[str, ShapeSpec], in_features: Sequence[str]) -> BoxBranch:
        """FAST_RCNN.ROI_BOX_HEAD and its keys, MODEL.NUM_CLASSES / CLS_AGNOSTIC_BBOX_REG, TRAIN
        sampling keys, TEST post-processing keys, TEST.BOX_DECODE_SPACE."""
        channels = {input_shape[name].channels for name in in_features}
        if len(channels) != 1:
            raise ValueError(f"the box head's maps {in_features} must have one channel count, got {channels}")
        strides = [input_shape[name].stride for name in in_features]
        pooler = RoIPooler.from_cfg(cfg, strides, "FAST_RCNN")
        head = BOX_HEADS.build(cfg.FAST_RCNN.ROI_BOX_HEAD, cfg, channels.pop())
        outputs = FastRCNNOutputs(head.dim_out, cfg.MODEL.NUM_CLASSES, cfg.MODEL.CLS_AGNOSTIC_BBOX_REG)
        return cls(
            in_features,
            pooler,
            head,
            outputs,
            FastRCNNSampler.from_cfg(cfg),
            BoxPostProcessor.from_cfg(cfg),
            decode_space=cfg.TEST.BOX_DECODE_SPACE,
        )

    @property
    def plus_one(self) -> bool:
        return self.postprocessor.plus_one

    def _maps(self, features: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        return [features[name] for name in self.in_features]

    def forward_rois(
        self, features: Mapping[str, torch.Tensor], rois: torch.Tensor, with_map: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(class scores [R, C], box deltas [R, 4C], head map or None) of RoIs [R, 5] (input pixels)."""
        pooled = self.pooler(self._maps(features), rois)
        head_map = None
        if with_map:
            vector, head_map = self.head.forward_with_map(pooled)
        else:
            vector = self.head(pooled)
        cls_score, bbox_pred = self.outputs(vector)
        return cls_score, bbox_pred, head_map

    def losses(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[torch.Tensor],
        targets: Sequence[GroundTruth],
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], SampledRoIs]:
        """Sample RoIs among `proposals` (+ gt boxes) and return (losses, the sample)."""
        samples = self.sampler(
            [p.detach() for p in proposals],
            [t.boxes for t in targets],
            [t.classes for t in targets],
            [t.is_crowd for t in targets],
            generator,
        )
        cls_score, bbox_pred, head_map = self.forward_rois(features, samples.rois, with_map=self.keep_head_map)
        samples.head_map = head_map
        losses = fast_rcnn_losses(
            cls_score, bbox_pred, samples.labels, samples.bbox_targets, self.outputs.class_agnostic_bbox_reg
        )
        return losses, samples

    def class_boxes(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[torch.Tensor],
        images: Sequence[ImageInfo],
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image: class probabilities [R, C] and class-specific boxes [R, 4C] in original-image
        pixels (clipped), for `proposals` [R, 4] in network-input pixels."""
        cls_score, bbox_pred, _ = self.forward_rois(features, rois_with_batch_index(proposals))
        probs = F.softmax(cls_score.float(), dim=1)
        bbox_pred = bbox_pred.float()
        counts = [p.shape[0] for p in proposals]
        out = []
        for p, deltas, rois, image in zip(probs.split(counts), bbox_pred.split(counts), proposals, images):
            if self.decode_space == "original":
                boxes = self.postprocessor.decode(
                    deltas, rois.float() / image.scale, image.original_height, image.original_width
                )
            else:
                boxes = self.postprocessor.decode(deltas, rois.float(), image.height, image.width)
                ratio = boxes.new_tensor(
                    [image.original_width / image.width, image.original_height / image.height]
                ).repeat(2)
                boxes = (boxes.view(boxes.shape[0], -1, 4) * ratio).view(boxes.shape[0], -1)
            out.append((p, boxes))
        return out

    def detect(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[torch.Tensor],
        images: Sequence[ImageInfo],
    ) -> list[Detections]:
        """Final detections per image (boxes in original pixels; `input_boxes` in input pixels)."""
        if self.decode_space == "original":
            detections = []
            for probs, boxes in self.class_boxes(features, proposals, images):
                detections.append(self.postprocessor.single_image(probs, boxes))
            for det, image in zip(detections, images):
                det.input_boxes = det.boxes * image.scale
            return detections
        # torchvision: post-process in input pixels, then rescale the kept boxes
        cls_score, bbox_pred, _ = self.forward_rois(features, rois_with_batch_index(proposals))
        input_sizes = [(float(image.height), float(image.width)) for image in images]
        rois = [p.float() for p in proposals]
        detections = self.postprocessor(cls_score.float(), bbox_pred.float(), rois, input_sizes)
        for det, image in zip(detections, images):
            ratio = det.boxes.new_tensor(
                [image.original_width / image.width, image.original_height / image.height]
            ).repeat(2)
            det.input_boxes = det.boxes
            det.boxes = det.boxes * ratio
        return detections

    def detectron_weight_mapping(self) -> WeightMapping:
        return submodule_mappings({"head": self.head, "outputs": self.outputs})

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names under torchvision's `roi_heads` (box_head.fc6/fc7, box_predictor.*)."""
        mapping = {}
        if hasattr(self.head, "torchvision_weight_mapping"):
            mapping |= prefix_both(self.head.torchvision_weight_mapping(), "head", "box_head")
        for layer in ("cls_score", "bbox_pred"):
            for tensor in ("weight", "bias"):
                mapping[f"outputs.{layer}.{tensor}"] = f"box_predictor.{layer}.{tensor}"
        return mapping
