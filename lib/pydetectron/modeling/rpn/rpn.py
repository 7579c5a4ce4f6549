"""The region proposal network: head + anchors + proposals, and targets + losses in training."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from pydetectron.nn.weight_mapping import WeightMapping, add_prefix
from pydetectron.utils.threads import single_threaded

from ..levels import level_of_stride
from .anchors import AnchorGenerator
from .heads import FPNRPNHead, RPNHead, SingleScaleRPNHead, flatten_rpn_outputs
from .loss import RPNLoss
from .proposals import ProposalGenerator, check_im_info
from .targets import RPNTargetAssigner


class RPN(nn.Module):
    """Region proposal network over one (C4) or several (FPN) feature maps.

    `features[i]` must have the stride the anchor generator gives level i; any level order
    works (Detectron's FPN body returns coarsest first) as long as head, anchors and features
    agree. In training, proposals come from `train_proposals` (skipped when `rpn_only`: an
    RPN-only model needs only its losses then) and losses are computed; in eval, proposals
    come from `test_proposals`.
    """

    def __init__(
        self,
        head: RPNHead,
        anchor_generator: AnchorGenerator,
        train_proposals: ProposalGenerator,
        test_proposals: ProposalGenerator,
        target_assigner: RPNTargetAssigner,
        loss: RPNLoss,
        rpn_only: bool = False,
    ) -> None:
        super().__init__()
        if any(a != head.num_anchors for a in anchor_generator.num_anchors):
            raise ValueError(
                f"the head predicts {head.num_anchors} anchors per location but the anchor generator "
                f"places {anchor_generator.num_anchors}"
            )
        self.head = head
        self.anchor_generator = anchor_generator
        self.train_proposals = train_proposals
        self.test_proposals = test_proposals
        self.target_assigner = target_assigner
        self.loss = loss
        self.rpn_only = rpn_only

    @property
    def strides(self) -> list[int]:
        """Stride of each feature level, in the order the features are expected."""
        return list(self.anchor_generator.strides)

    def forward(
        self,
        features: Sequence[torch.Tensor],
        im_info: torch.Tensor,
        gt_boxes: Sequence[torch.Tensor] | None = None,
        gt_is_crowd: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor]]:
        """(proposals [Ri, 4], objectness probabilities [Ri], losses) for each image.

        im_info [N, 3] holds (height, width, scale) of each image in network-input pixels;
        gt_boxes (training) are [Gi, 4] in the same pixels; `generator` seeds anchor sampling;
        `image_size` is the padded batch's (H, W) (used by the torchvision anchor convention).
        Losses are loss_rpn_cls and loss_rpn_bbox in training, empty in eval.
        """
        if isinstance(features, torch.Tensor):
            features = [features]
        features = list(features)
        if len(features) != len(self.strides):
            raise ValueError(
                f"RPN expects {len(self.strides)} feature maps (strides {self.strides}), got {len(features)}"
            )
        check_im_info(im_info, features[0].shape[0])
        cls_logits, bbox_deltas = self.head(features)
        anchor_dtype = torch.promote_types(features[0].dtype, torch.float32)
        anchors = self.anchor_generator(
            [f.shape[-2:] for f in features], features[0].device, anchor_dtype, image_size=image_size
        )

        proposals: list[torch.Tensor] = []
        scores: list[torch.Tensor] = []
        if not (self.training and self.rpn_only):
            make_proposals = self.train_proposals if self.training else self.test_proposals
            # top-k, decoding and NMS over a few thousand boxes: faster on one thread, and
            # no stalls on the thread pool when the machine is loaded
            with single_threaded() if features[0].device.type == "cpu" else nullcontext():
                proposals, scores = make_proposals(cls_logits, bbox_deltas, anchors, im_info)

        losses: dict[str, torch.Tensor] = {}
        if self.training:
            if gt_boxes is None:
                raise ValueError("RPN needs gt_boxes in training mode")
            targets = self.target_assigner(torch.cat(anchors), im_info, gt_boxes, gt_is_crowd, generator)
            flat_logits, flat_deltas = flatten_rpn_outputs(cls_logits, bbox_deltas)
            loss_cls, loss_bbox = self.loss(flat_logits, flat_deltas, targets.labels, targets.bbox_targets)
            losses = {"loss_rpn_cls": loss_cls, "loss_rpn_bbox": loss_bbox}
        return proposals, scores, losses

    def detectron_weight_mapping(self) -> WeightMapping:
        """The head's blob names, under `head.`."""
        mapping, orphans = self.head.detectron_weight_mapping()
        return add_prefix(mapping, "head"), orphans

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names in torchvision's RegionProposalNetwork (`head.conv.0.0`, `head.cls_logits`, ...)."""
        mapping = {}
        for tensor in ("weight", "bias"):
            mapping[f"head.conv.{tensor}"] = f"head.conv.0.0.{tensor}"
            mapping[f"head.cls_logits.{tensor}"] = f"head.cls_logits.{tensor}"
            mapping[f"head.bbox_pred.{tensor}"] = f"head.bbox_pred.{tensor}"
        return mapping

    @classmethod
    def from_cfg(cls, cfg: Any, in_channels: int, strides: Sequence[int]) -> RPN:
        """Build from Detectron keys; `strides` are those of the features forward() will get.

        FPN (FPN.FPN_ON and FPN.MULTILEVEL_RPN): one level per stride 2**k, k in
        FPN.RPN_MIN_LEVEL..RPN_MAX_LEVEL (any order), anchor size
        FPN.RPN_ANCHOR_START_SIZE * 2**(k - RPN_MIN_LEVEL), FPN.RPN_ASPECT_RATIOS. Otherwise a
        single level with stride RPN.STRIDE, RPN.SIZES and RPN.ASPECT_RATIOS.
        Proposals: TRAIN/TEST.RPN_PRE_NMS_TOP_N (per level), RPN_POST_NMS_TOP_N (per image),
        RPN_NMS_THRESH, RPN_MIN_SIZE; targets: TRAIN.RPN_POSITIVE_OVERLAP, NEGATIVE_OVERLAP,
        FG_FRACTION, BATCH_SIZE_PER_IM, STRADDLE_THRESH; MODEL.BOX_PLUS_ONE, BBOX_XFORM_CLIP,
        MODEL.RPN_ONLY, RPN.ANCHOR_CONVENTION
        ('detectron' | 'torchvision'), RPN.MIN_SIZE_RULE ('detectron' | 'torchvision'),
        RPN.SCORE_THRESH (0.0), RPN.CLS_LOSS_NORMALIZATION ('' = Detectron's choice:
        'batch_size_per_im' with FPN, 'num_sampled' without), RPN.BBOX_LOSS_NORMALIZATION
        ('per_image').
        """
        strides = [int(s) for s in strides]
        fpn = bool(cfg.FPN.FPN_ON) and bool(cfg.FPN.MULTILEVEL_RPN)
        plus_one = bool(cfg.MODEL.BOX_PLUS_ONE)
        convention = cfg.RPN.ANCHOR_CONVENTION
        activation = cfg.RPN.CLS_ACTIVATION
        if activation != "sigmoid":
            raise ValueError(f"RPN.CLS_ACTIVATION {activation!r} is not supported; only 'sigmoid' is")
        if fpn:
            k_min, k_max = int(cfg.FPN.RPN_MIN_LEVEL), int(cfg.FPN.RPN_MAX_LEVEL)
            levels = [level_of_stride(s) for s in strides]
            if sorted(levels) != list(range(k_min, k_max + 1)):
                raise ValueError(
                    f"FPN RPN needs one feature map per level {k_min}..{k_max} (strides "
                    f"{[2**k for k in range(k_min, k_max + 1)]}), got strides {strides}"
                )
            ratios = tuple(cfg.FPN.RPN_ASPECT_RATIOS)
            start = float(cfg.FPN.RPN_ANCHOR_START_SIZE)
            sizes = [(start * 2.0 ** (k - k_min),) for k in levels]
            head: RPNHead = FPNRPNHead(in_channels, len(ratios), min_level=k_min)
        else:
            if strides != [int(cfg.RPN.STRIDE)]:
                raise ValueError(
                    f"single-scale RPN expects one feature map of stride RPN.STRIDE={cfg.RPN.STRIDE}, "
                    f"got strides {strides}"
                )
            ratios = tuple(cfg.RPN.ASPECT_RATIOS)
            sizes = [tuple(cfg.RPN.SIZES)]
            hidden = None if cfg.RPN.OUT_DIM_AS_IN_DIM else int(cfg.RPN.OUT_DIM)
            head = SingleScaleRPNHead(in_channels, len(ratios) * len(sizes[0]), hidden_channels=hidden)
        anchor_generator = AnchorGenerator(strides, sizes, ratios, convention=convention)

        def proposals(mode: str) -> ProposalGenerator:
            node = cfg[mode]
            return ProposalGenerator(
                pre_nms_top_n=node.RPN_PRE_NMS_TOP_N,
                post_nms_top_n=node.RPN_POST_NMS_TOP_N,
                nms_thresh=node.RPN_NMS_THRESH,
                min_size=node.RPN_MIN_SIZE,
                min_size_rule=cfg.RPN.MIN_SIZE_RULE,
                score_thresh=cfg.RPN.SCORE_THRESH,
                plus_one=plus_one,
                bbox_xform_clip=cfg.BBOX_XFORM_CLIP,
            )

        train = cfg.TRAIN
        target_assigner = RPNTargetAssigner(
            positive_overlap=train.RPN_POSITIVE_OVERLAP,
            negative_overlap=train.RPN_NEGATIVE_OVERLAP,
            fg_fraction=train.RPN_FG_FRACTION,
            batch_size_per_im=train.RPN_BATCH_SIZE_PER_IM,
            straddle_thresh=train.RPN_STRADDLE_THRESH,
            plus_one=plus_one,
        )
        cls_normalization = cfg.RPN.CLS_LOSS_NORMALIZATION or (
            "batch_size_per_im" if fpn else "num_sampled"
        )
        loss = RPNLoss(
            cls_normalization=cls_normalization,
            bbox_normalization=cfg.RPN.BBOX_LOSS_NORMALIZATION,
            batch_size_per_im=train.RPN_BATCH_SIZE_PER_IM,
        )
        rpn_only = bool(cfg.MODEL.RPN_ONLY)
        return cls(head, anchor_generator, proposals("TRAIN"), proposals("TEST"), target_assigner, loss, rpn_only)

