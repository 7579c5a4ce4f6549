"""RetinaNet's dense head: a class tower and a box tower shared by every pyramid level.

Detectron's add_fpn_retinanet_outputs: NUM_CONVS 3x3 convs + ReLU per tower (the box
branch reuses the class tower with SHARE_CLS_BBOX_TOWER), then a 3x3 conv for the class
logits and one for the box deltas. Output layout, per level:
  cls_logits [N, A * K, H, W]  channels ordered (A, K): anchor a owns channels aK..aK+K-1;
  bbox_pred  [N, A * B, H, W]  B = 4, or 4 * (C - 1) with class-specific boxes, ordered
                               (A, classes, 4).
K is C - 1 for sigmoid classification (class c -> logit c - 1), C for softmax (logit 0 is
background) and C for sigmoid with a background logit (torchvision's layout: logit c is
class c, logit 0 is never a positive).
`flatten_dense_outputs` turns them into rows ordered level, location, anchor (the anchors'
order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pydetectron.nn.init import constant_fill_, gaussian_fill_
from pydetectron.nn.weight_mapping import WeightMapping, conv_mapping


def sigmoid_prior_bias(prior_prob: float) -> float:
    """The logit bias that makes every sigmoid start at `prior_prob` (focal loss paper)."""
    return -math.log((1.0 - prior_prob) / prior_prob)


def softmax_prior_bias(num_classes: int, prior_prob: float) -> torch.Tensor:
    """Biases [C] of one anchor's softmax logits: each foreground class starts at about
    `prior_prob`, background at the rest (Detectron's get_retinanet_bias_init)."""
    bias = torch.zeros(num_classes)
    bias[0] = math.log((num_classes - 1) * (1.0 - prior_prob) / prior_prob)
    return bias


class RetinaNetHead(nn.Module):
    """The class and box towers and predictors, applied with the same weights to every level.

    Args:
        in_channels: channels of every pyramid map (FPN.DIM).
        num_anchors: anchors per location A.
        num_logits: class logits per anchor K (see the module docstring).
        box_dim: deltas per anchor B (4, or 4 * (C - 1) for class-specific boxes).
        num_convs: convs per tower (RETINANET.NUM_CONVS).
        share_tower: the box predictor reads the class tower (RETINANET.SHARE_CLS_BBOX_TOWER).
        cls_bias: initial class-logit bias, a number or a [K] tensor per anchor.
        min_level: finest level, whose Detectron names hold the shared weights (``_fpn3``).
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_logits: int,
        box_dim: int = 4,
        num_convs: int = 4,
        share_tower: bool = False,
        cls_bias: float | torch.Tensor = 0.0,
        min_level: int = 3,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_anchors", num_anchors), ("num_logits", num_logits)):
            if value <= 0:
                raise ValueError(f"RetinaNetHead: {name} must be positive, got {value}")
        if box_dim <= 0 or box_dim % 4:
            raise ValueError(f"RetinaNetHead: box_dim must be a positive multiple of 4, got {box_dim}")
        if num_convs < 0:
            raise ValueError(f"RetinaNetHead: num_convs must be >= 0, got {num_convs}")
        self.num_anchors = num_anchors
        self.num_logits = num_logits
        self.box_dim = box_dim
        self.share_tower = share_tower
        self.min_level = min_level

        def tower() -> nn.ModuleList:
            return nn.ModuleList(nn.Conv2d(in_channels, in_channels, 3, padding=1) for _ in range(num_convs))

        self.cls_tower = tower()
        self.bbox_tower = nn.ModuleList() if share_tower else tower()
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_logits, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * box_dim, 3, padding=1)
        for conv in (*self.cls_tower, *self.bbox_tower, self.cls_logits, self.bbox_pred):
            gaussian_fill_(conv.weight, std=0.01)
            constant_fill_(conv.bias, 0.0)
        with torch.no_grad():
            bias = torch.as_tensor(cls_bias, dtype=self.cls_logits.bias.dtype)
            if bias.dim() == 1 and bias.numel() != num_logits:
                raise ValueError(f"RetinaNetHead: cls_bias has {bias.numel()} values for {num_logits} logits")
            self.cls_logits.bias.copy_(
                bias.repeat(num_anchors) if bias.dim() == 1 else bias.expand(num_anchors * num_logits)
            )

    @staticmethod
    def _run(tower: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for conv in tower:
            x = torch.relu(conv(x))
        return x

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level: class logits [N, A * K, H, W] and box deltas [N, A * B, H, W]."""
        cls_logits, bbox_pred = [], []
        for feature in features:
            cls_feature = self._run(self.cls_tower, feature)
            box_feature = cls_feature if self.share_tower else self._run(self.bbox_tower, feature)
            cls_logits.append(self.cls_logits(cls_feature))
            bbox_pred.append(self.bbox_pred(box_feature))
        return cls_logits, bbox_pred

    def detectron_weight_mapping(self) -> WeightMapping:
        """retnet_cls_conv_n{i}_fpn{k}, retnet_cls_pred_fpn{k}, retnet_bbox_conv_n{i}_fpn{k},
        retnet_bbox_pred_fpn{k} (``_w``, ``_b``), k the finest level: Detectron's shared blobs."""
        suffix = f"fpn{self.min_level}"
        mapping: dict[str, str] = {}
        for i, conv in enumerate(self.cls_tower):
            mapping |= conv_mapping(f"cls_tower.{i}", conv, f"retnet_cls_conv_n{i}_{suffix}")
        for i, conv in enumerate(self.bbox_tower):
            mapping |= conv_mapping(f"bbox_tower.{i}", conv, f"retnet_bbox_conv_n{i}_{suffix}")
        mapping |= conv_mapping("cls_logits", self.cls_logits, f"retnet_cls_pred_{suffix}")
        mapping |= conv_mapping("bbox_pred", self.bbox_pred, f"retnet_bbox_pred_{suffix}")
        return mapping, []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names in torchvision's RetinaNetHead (``classification_head.conv.0.0``, ``.cls_logits``,
        ``regression_head.conv.0.0``, ``.bbox_reg``)."""
        mapping = {}
        for tensor in ("weight", "bias"):
            for i in range(len(self.cls_tower)):
                mapping[f"cls_tower.{i}.{tensor}"] = f"classification_head.conv.{i}.0.{tensor}"
            for i in range(len(self.bbox_tower)):
                mapping[f"bbox_tower.{i}.{tensor}"] = f"regression_head.conv.{i}.0.{tensor}"
            mapping[f"cls_logits.{tensor}"] = f"classification_head.cls_logits.{tensor}"
            mapping[f"bbox_pred.{tensor}"] = f"regression_head.bbox_reg.{tensor}"
        return mapping


def flatten_dense_outputs(
    cls_logits: Sequence[torch.Tensor], bbox_pred: Sequence[torch.Tensor], num_logits: int, box_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level head outputs -> logits [N, R, K] and deltas [N, R, B], R = sum H * W * A.

    Rows are level by level (in the order given), then location-major, then anchor.
    """
    if len(cls_logits) != len(bbox_pred) or not cls_logits:
        raise ValueError(
            f"need one cls_logits and one bbox_pred map per level, got {len(cls_logits)} and {len(bbox_pred)}"
        )
    flat_logits, flat_deltas = [], []
    for level, (logits, deltas) in enumerate(zip(cls_logits, bbox_pred)):
        n, channels, h, w = logits.shape
        if channels % num_logits:
            raise ValueError(f"level {level}: cls_logits has {channels} channels, not a multiple of {num_logits}")
        a = channels // num_logits
        if deltas.shape != (n, a * box_dim, h, w):
            raise ValueError(
                f"level {level}: bbox_pred must have shape {(n, a * box_dim, h, w)} to match cls_logits "
                f"{tuple(logits.shape)}, got {tuple(deltas.shape)}"
            )
        flat_logits.append(logits.view(n, a, num_logits, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, num_logits))
        flat_deltas.append(deltas.view(n, a, box_dim, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, box_dim))
    return torch.cat(flat_logits, dim=1), torch.cat(flat_deltas, dim=1)
