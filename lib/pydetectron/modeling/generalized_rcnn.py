"""Generalized R-CNN: conv body -> RPN -> RoI heads (box + optional mask / keypoint / others).

Training returns a dict of losses (`loss_*`) and metrics; inference returns one
`Detections` per image with boxes in original-image pixels (and masks / keypoints when
the model has those branches).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pydetectron.nn import WeightMapping, prefix_both, submodule_mappings
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth

from .levels import pooled_maps
from .registry import MODEL_TYPES
from .roi_heads.branch import ImageInfo
from .roi_heads.roi_heads import RoIHeads
from .rpn.rpn import RPN


def image_infos(im_info: torch.Tensor, original_sizes: Sequence[tuple[int, int]] | None) -> list[ImageInfo]:
    """Per-image `ImageInfo` from im_info [N, 3] (h, w, scale) and the original (h, w) sizes
    (default: h and w divided by the scale, rounded)."""
    rows = im_info.tolist()
    if original_sizes is None:
        original_sizes = [(int(round(h / s)), int(round(w / s))) for h, w, s in rows]
    if len(original_sizes) != len(rows):
        raise ValueError(f"original_sizes has {len(original_sizes)} entries for {len(rows)} images")
    return [ImageInfo(h, w, s, int(oh), int(ow)) for (h, w, s), (oh, ow) in zip(rows, original_sizes)]


def checked_im_info(images: torch.Tensor, im_info: torch.Tensor) -> torch.Tensor:
    """`im_info` as float32 on the images' device, after checking both shapes: images
    [N, 3, H, W], im_info [N, 3] (height, width, scale)."""
    if images.dim() != 4:
        raise ValueError(f"images must be a batch [N, 3, H, W], got shape {tuple(images.shape)}")
    if im_info.dim() != 2 or im_info.shape != (images.shape[0], 3):
        raise ValueError(f"im_info must have shape [{images.shape[0]}, 3] (h, w, scale), got {tuple(im_info.shape)}")
    return im_info.to(device=images.device, dtype=torch.float32)


@MODEL_TYPES.register("generalized_rcnn")
class GeneralizedRCNN(nn.Module):
    """Faster / Mask / Keypoint R-CNN (and RPN-only) models in Detectron's layout.

    Args:
        body: conv body returning named maps, with `output_shape()`.
        rpn: the RPN, fed the body maps `rpn_in_features` (finest first).
        roi_heads: box branch + optional branches; None for an RPN-only model.
    """

    def __init__(self, body: nn.Module, rpn: RPN, rpn_in_features: Sequence[str], roi_heads: RoIHeads | None = None):
        super().__init__()
        shapes = body.output_shape()
        missing = [name for name in rpn_in_features if name not in shapes]
        if missing:
            raise ValueError(f"the RPN reads maps {missing} that the body does not return ({list(shapes)})")
        self.body = body
        self.rpn = rpn
        self.rpn_in_features = list(rpn_in_features)
        self.roi_heads = roi_heads

    @classmethod
    def from_cfg(cls, cfg, body: nn.Module) -> GeneralizedRCNN:
        """The RPN over FPN.RPN_MIN_LEVEL..RPN_MAX_LEVEL (FPN.MULTILEVEL_RPN) or the body's one map,
        then the RoI heads (none with MODEL.RPN_ONLY)."""
        if not (cfg.MODEL.FASTER_RCNN or cfg.MODEL.RPN_ONLY):
            raise ValueError(
                "only end-to-end models are supported: set MODEL.FASTER_RCNN: True (or MODEL.RPN_ONLY: True); "
                "precomputed proposals are not"
            )
        shapes = body.output_shape()
        fpn = cfg.FPN
        multilevel = bool(fpn.FPN_ON and fpn.MULTILEVEL_RPN)
        rpn_features = pooled_maps(shapes, multilevel, int(fpn.RPN_MIN_LEVEL), int(fpn.RPN_MAX_LEVEL), "the RPN")
        channels = {shapes[name].channels for name in rpn_features}
        if len(channels) != 1:
            raise ValueError(f"the RPN's maps {rpn_features} must have one channel count, got {channels}")
        rpn = RPN.from_cfg(cfg, channels.pop(), [shapes[name].stride for name in rpn_features])
        if cfg.MODEL.RPN_ONLY:
            if cfg.MODEL.MASK_ON or cfg.MODEL.KEYPOINTS_ON:
                raise ValueError("MODEL.RPN_ONLY models have no RoI heads: MASK_ON / KEYPOINTS_ON must be False")
            return cls(body, rpn, rpn_features)
        return cls(body, rpn, rpn_features, RoIHeads.from_cfg(cfg, shapes))

    @property
    def rpn_only(self) -> bool:
        return self.roi_heads is None

    def forward(
        self,
        images: torch.Tensor,
        im_info: torch.Tensor,
        targets: Sequence[GroundTruth] | None = None,
        original_sizes: Sequence[tuple[int, int]] | None = None,
    ):
        """Losses (training, needs `targets`) or detections (eval).

        images [N, 3, H, W] (padded batch); im_info [N, 3] = (height, width, scale) of each
        image inside the batch; targets: one `GroundTruth` per image (boxes in input pixels);
        original_sizes (h, w) of the images before scaling (default: from im_info).
        """
        im_info = checked_im_info(images, im_info)
        features = self.body(images)
        rpn_maps = [features[name] for name in self.rpn_in_features]
        image_size = tuple(images.shape[-2:])
        if self.training:
            if targets is None:
                raise ValueError("GeneralizedRCNN needs targets in training mode")
            if len(targets) != images.shape[0]:
                raise ValueError(f"{len(targets)} targets for {images.shape[0]} images")
            targets = [t.to(images.device) for t in targets]
            gt_boxes = [t.boxes for t in targets]
            gt_crowd = [t.is_crowd for t in targets]
            proposals, _, losses = self.rpn(rpn_maps, im_info, gt_boxes, gt_crowd, image_size=image_size)
            if self.roi_heads is not None:
                images_info = image_infos(im_info, original_sizes)
                losses.update(self.roi_heads(features, proposals, images_info, targets))
            return losses
        proposals, proposal_scores, _ = self.rpn(rpn_maps, im_info, image_size=image_size)
        images_info = image_infos(im_info, original_sizes)
        if self.roi_heads is None:
            return [
                Detections(p / image.scale, s, torch.ones_like(s, dtype=torch.long), input_boxes=p)
                for p, s, image in zip(proposals, proposal_scores, images_info)
            ]
        return self.roi_heads(features, proposals, images_info)

    def detectron_weight_mapping(self) -> WeightMapping:
        return submodule_mappings({"body": self.body, "rpn": self.rpn, "roi_heads": self.roi_heads})

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Our state-dict names -> names in a torchvision *rcnn state dict."""
        mapping = prefix_both(self.body.torchvision_weight_mapping(), "body", "backbone")
        mapping |= prefix_both(self.rpn.torchvision_weight_mapping(), "rpn", "rpn")
        if self.roi_heads is not None:
            mapping |= prefix_both(self.roi_heads.torchvision_weight_mapping(), "roi_heads", "roi_heads")
        return mapping
