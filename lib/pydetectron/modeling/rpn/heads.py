"""RPN heads: a 3x3 conv + ReLU, then 1x1 objectness logits and 1x1 box deltas.

Output layout, per level, as in Detectron and torchvision:
  cls_logits  [N, A, H, W]   one sigmoid logit per anchor;
  bbox_deltas [N, 4 * A, H, W] with channels ordered (A, 4): anchor a owns channels
  4a..4a+3 = (dx, dy, dw, dh).
`flatten_rpn_outputs` turns them into rows ordered location-major, then anchor, which is
the order of `AnchorGenerator`'s anchors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pydetectron.nn.init import constant_fill_, gaussian_fill_
from pydetectron.nn.weight_mapping import WeightMapping, conv_mapping


class RPNHead(nn.Module):
    """The RPN convs, applied with the same weights to every feature level given.

    `blob_suffix` names the Detectron blobs: '' gives conv_rpn_w, rpn_cls_logits_w,
    rpn_bbox_pred_w; '_fpn2' gives conv_rpn_fpn2_w, ... Use `SingleScaleRPNHead` or
    `FPNRPNHead` rather than this class directly.
    """

    def __init__(
        self, in_channels: int, num_anchors: int, hidden_channels: int | None = None, blob_suffix: str = ""
    ) -> None:
        super().__init__()
        if in_channels <= 0 or num_anchors <= 0:
            raise ValueError(f"in_channels ({in_channels}) and num_anchors ({num_anchors}) must be positive")
        hidden = in_channels if hidden_channels is None else hidden_channels
        self.num_anchors = num_anchors
        self.blob_suffix = blob_suffix
        self.conv = nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1)
        self.cls_logits = nn.Conv2d(hidden, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(hidden, 4 * num_anchors, kernel_size=1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            gaussian_fill_(layer.weight, std=0.01)
            constant_fill_(layer.bias, 0.0)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level: objectness logits [N, A, H, W] and box deltas [N, 4A, H, W]."""
        if isinstance(features, torch.Tensor):
            features = [features]
        cls_logits, bbox_deltas = [], []
        for feature in features:
            hidden = torch.relu(self.conv(feature))
            cls_logits.append(self.cls_logits(hidden))
            bbox_deltas.append(self.bbox_pred(hidden))
        return cls_logits, bbox_deltas

    def detectron_weight_mapping(self) -> WeightMapping:
        """conv_rpn{suffix}, rpn_cls_logits{suffix}, rpn_bbox_pred{suffix} (_w and _b)."""
        suffix = self.blob_suffix
        mapping = conv_mapping("conv", self.conv, "conv_rpn" + suffix)
        mapping |= conv_mapping("cls_logits", self.cls_logits, "rpn_cls_logits" + suffix)
        mapping |= conv_mapping("bbox_pred", self.bbox_pred, "rpn_bbox_pred" + suffix)
        return mapping, []


class SingleScaleRPNHead(RPNHead):
    """Detectron's add_single_scale_rpn_outputs (one feature map, e.g. C4's res4)."""

    def __init__(self, in_channels: int, num_anchors: int, hidden_channels: int | None = None) -> None:
        super().__init__(in_channels, num_anchors, hidden_channels, blob_suffix="")


class FPNRPNHead(RPNHead):
    """Detectron's add_fpn_rpn_outputs: one head shared by all levels.

    Detectron stores the shared weights under the finest level's names, e.g.
    conv_rpn_fpn2_w for `min_level` = 2.
    """

    def __init__(
        self, in_channels: int, num_anchors: int, min_level: int = 2, hidden_channels: int | None = None
    ) -> None:
        super().__init__(in_channels, num_anchors, hidden_channels, blob_suffix=f"_fpn{min_level}")
        self.min_level = min_level


def flatten_rpn_outputs(
    cls_logits: Sequence[torch.Tensor], bbox_deltas: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level head outputs -> logits [N, K] and deltas [N, K, 4], K = sum H * W * A.

    Rows are level by level (in the order given), then location-major, then anchor.
    """
    if len(cls_logits) != len(bbox_deltas) or not cls_logits:
        raise ValueError(
            f"need one cls_logits and one bbox_deltas map per level, got {len(cls_logits)} and {len(bbox_deltas)}"
        )
    flat_logits, flat_deltas = [], []
    for level, (logits, deltas) in enumerate(zip(cls_logits, bbox_deltas)):
        n, a, h, w = logits.shape
        if deltas.shape != (n, 4 * a, h, w):
            raise ValueError(
                f"level {level}: bbox_deltas must have shape {(n, 4 * a, h, w)} to match cls_logits "
                f"{tuple(logits.shape)}, got {tuple(deltas.shape)}"
            )
        flat_logits.append(logits.permute(0, 2, 3, 1).reshape(n, -1))
        flat_deltas.append(deltas.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
    return torch.cat(flat_logits, dim=1), torch.cat(flat_deltas, dim=1)
