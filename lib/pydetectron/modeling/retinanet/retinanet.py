"""RetinaNet: a conv body with pyramid levels -> dense class/box head -> focal loss or detections.

Same interface as `GeneralizedRCNN`, so Predictor, test_net.py, infer_simple.py and
train_net_step.py run it as they are: ``model(images, im_info, targets=None,
original_sizes=None)`` returns a dict of losses (`loss_*`) and metrics in training, one
`Detections` per image (boxes in original-image pixels) in eval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pydetectron.config import check_retinanet_cfg
from pydetectron.nn import WeightMapping, add_prefix, prefix_both
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth

from ..generalized_rcnn import checked_im_info, image_infos
from ..levels import ShapeSpec, features_in_levels, level_of_stride
from ..registry import MODEL_TYPES
from ..roi_heads.box_postprocess import SoftNMSSettings
from ..rpn.anchors import AnchorGenerator
from .anchors import retinanet_anchor_generator
from .head import RetinaNetHead, flatten_dense_outputs, sigmoid_prior_bias, softmax_prior_bias
from .inference import RetinaNetPostProcessor
from .loss import RetinaNetLoss
from .targets import RetinaNetTargetAssigner


@MODEL_TYPES.register("retinanet")
class RetinaNet(nn.Module):
    """RetinaNet over the body maps `in_features` (finest first, one per pyramid level).

    Args:
        body: conv body returning named maps, with `output_shape()`.
        in_features: the maps the head runs on, finest first.
        head: `RetinaNetHead`.
        anchor_generator: anchors of those maps, in the head's anchor order.
        target_assigner, loss: training targets and losses.
        postprocessor: detections at inference.
    """

    def __init__(
        self,
        body: nn.Module,
        in_features: Sequence[str],
        head: RetinaNetHead,
        anchor_generator: AnchorGenerator,
        target_assigner: RetinaNetTargetAssigner,
        loss: RetinaNetLoss,
        postprocessor: RetinaNetPostProcessor,
    ) -> None:
        super().__init__()
        shapes = body.output_shape()
        missing = [name for name in in_features if name not in shapes]
        if missing:
            raise ValueError(f"RetinaNet reads maps {missing} that the body does not return ({list(shapes)})")
        strides = [shapes[name].stride for name in in_features]
        if strides != list(anchor_generator.strides):
            raise ValueError(
                f"the maps {list(in_features)} have strides {strides}, the anchors {anchor_generator.strides}"
            )
        if any(a != head.num_anchors for a in anchor_generator.num_anchors):
            raise ValueError(
                f"the head predicts {head.num_anchors} anchors per location, the anchor generator places "
                f"{anchor_generator.num_anchors}"
            )
        if (head.num_logits, head.box_dim) != (loss.num_logits, loss.box_dim):
            raise ValueError(
                f"the head predicts {head.num_logits} logits and {head.box_dim} deltas per anchor, the loss "
                f"expects {loss.num_logits} and {loss.box_dim}"
            )
        self.body = body
        self.in_features = list(in_features)
        self.head = head
        self.anchor_generator = anchor_generator
        self.target_assigner = target_assigner
        self.loss = loss
        self.postprocessor = postprocessor

    def forward(
        self,
        images: torch.Tensor,
        im_info: torch.Tensor,
        targets: Sequence[GroundTruth] | None = None,
        original_sizes: Sequence[tuple[int, int]] | None = None,
    ):
        """Losses (training, needs `targets`) or detections (eval); arguments as `GeneralizedRCNN`'s:
        images [N, 3, H, W] (padded batch), im_info [N, 3] (height, width, scale), one
        `GroundTruth` per image (boxes in input pixels), original (h, w) sizes."""
        im_info = checked_im_info(images, im_info)
        features = self.body(images)
        maps = [features[name] for name in self.in_features]
        cls_logits, bbox_pred = self.head(maps)
        anchor_dtype = torch.promote_types(maps[0].dtype, torch.float32)
        anchors = self.anchor_generator(
            [m.shape[-2:] for m in maps], images.device, anchor_dtype, image_size=tuple(images.shape[-2:])
        )
        if self.training:
            if targets is None:
                raise ValueError("RetinaNet needs targets in training mode")
            if len(targets) != images.shape[0]:
                raise ValueError(f"{len(targets)} targets for {images.shape[0]} images")
            assigned = self.target_assigner(torch.cat(anchors), [t.to(images.device) for t in targets])
            flat_logits, flat_deltas = flatten_dense_outputs(
                cls_logits, bbox_pred, self.head.num_logits, self.head.box_dim
            )
            return self.loss(flat_logits, flat_deltas, assigned)
        detections: list[Detections] = self.postprocessor(
            cls_logits, bbox_pred, anchors, image_infos(im_info, original_sizes)
        )
        return detections

    def detectron_weight_mapping(self) -> WeightMapping:
        body_mapping, orphans = self.body.detectron_weight_mapping()
        head_mapping, head_orphans = self.head.detectron_weight_mapping()
        return add_prefix(body_mapping, "body") | add_prefix(head_mapping, "head"), orphans + head_orphans

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Our state-dict names -> names in a torchvision RetinaNet state dict."""
        mapping = prefix_both(self.body.torchvision_weight_mapping(), "body", "backbone")
        return mapping | prefix_both(self.head.torchvision_weight_mapping(), "head", "head")

    @classmethod
    def from_cfg(cls, cfg: Any, body: nn.Module) -> RetinaNet:
        """Build on `body` from the RETINANET.* keys (levels FPN.RPN_MIN_LEVEL..RPN_MAX_LEVEL, as
        Detectron), MODEL.NUM_CLASSES, MODEL.BOX_PLUS_ONE, BBOX_XFORM_CLIP and the TEST keys
        NMS, DETECTIONS_PER_IM, BBOX_REG, SOFT_NMS, BOX_DECODE_SPACE."""
        check_retinanet_cfg(cfg)
        r = cfg.RETINANET
        shapes: Mapping[str, ShapeSpec] = body.output_shape()
        in_features = features_in_levels(shapes, int(cfg.FPN.RPN_MIN_LEVEL), int(cfg.FPN.RPN_MAX_LEVEL))
        channels = {shapes[name].channels for name in in_features}
        if len(channels) != 1:
            raise ValueError(f"RetinaNet's maps {in_features} must have one channel count, got {channels}")
        levels = [level_of_stride(shapes[name].stride) for name in in_features]
        num_classes = int(cfg.MODEL.NUM_CLASSES)
        layout = {
            "num_classes": num_classes,
            "softmax": bool(r.SOFTMAX),
            "background_logit": bool(r.BACKGROUND_LOGIT),
            "class_specific_bbox": bool(r.CLASS_SPECIFIC_BBOX),
        }
        loss = RetinaNetLoss(
            **layout,
            alpha=float(r.LOSS_ALPHA),
            gamma=float(r.LOSS_GAMMA),
            beta=float(r.BBOX_REG_BETA),
            bbox_reg_weight=float(r.BBOX_REG_WEIGHT),
            normalization=str(r.LOSS_NORMALIZATION),
        )
        anchor_generator = retinanet_anchor_generator(
            levels,
            anchor_scale=float(r.ANCHOR_SCALE),
            scales_per_octave=int(r.SCALES_PER_OCTAVE),
            aspect_ratios=tuple(r.ASPECT_RATIOS),
            convention=str(r.ANCHOR_CONVENTION),
        )
        prior = float(r.PRIOR_PROB)
        head = RetinaNetHead(
            channels.pop(),
            num_anchors=anchor_generator.num_anchors[0],
            num_logits=loss.num_logits,
            box_dim=loss.box_dim,
            num_convs=int(r.NUM_CONVS),
            share_tower=bool(r.SHARE_CLS_BBOX_TOWER),
            cls_bias=softmax_prior_bias(num_classes, prior) if r.SOFTMAX else sigmoid_prior_bias(prior),
            min_level=levels[0],
        )
        plus_one = bool(cfg.MODEL.BOX_PLUS_ONE)
        assigner = RetinaNetTargetAssigner(
            positive_overlap=float(r.POSITIVE_OVERLAP),
            negative_overlap=float(r.NEGATIVE_OVERLAP),
            low_quality_matches=str(r.LOW_QUALITY_MATCHES),
            plus_one=plus_one,
        )
        test = cfg.TEST
        postprocessor = RetinaNetPostProcessor(
            **layout,
            score_thresh=float(r.INFERENCE_TH),
            coarsest_score_thresh=float(r.COARSEST_INFERENCE_TH),
            pre_nms_top_n=int(r.PRE_NMS_TOP_N),
            nms_thresh=float(test.NMS),
            detections_per_image=int(test.DETECTIONS_PER_IM),
            apply_bbox_reg=bool(test.BBOX_REG),
            plus_one=plus_one,
            bbox_xform_clip=float(cfg.BBOX_XFORM_CLIP),
            output_space=str(test.BOX_DECODE_SPACE),
            # Detectron's RetinaNet Soft-NMS: TEST.NMS as the overlap threshold, drops scores below 1e-4
            soft_nms=SoftNMSSettings(
                bool(test.SOFT_NMS.ENABLED),
                str(test.SOFT_NMS.METHOD),
                float(test.SOFT_NMS.SIGMA),
                float(test.NMS),
                1e-4,
            ),
        )
        return cls(body, in_features, head, anchor_generator, assigner, loss, postprocessor)
