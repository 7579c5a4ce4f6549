"""Fast R-CNN box heads on pooled RoI features, keyed by Detectron's names.

A head maps pooled features [R, C, S, S] to a vector [R, dim_out]; the `FastRCNNOutputs`
layer turns that vector into class scores and box deltas. Each module owns its Detectron
blob names (`detectron_weight_mapping`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron.nn import (
    GroupNormSettings,
    WeightMapping,
    add_prefix,
    constant_fill_,
    conv_mapping,
    gaussian_fill_,
    group_norm,
    msra_fill_,
    norm_mapping,
    xavier_fill_,
)

from ..backbones import ResNetBlockSettings
from .head_registries import BOX_HEADS


def _linear(dim_in: int, dim_out: int) -> nn.Linear:
    layer = nn.Linear(dim_in, dim_out)
    xavier_fill_(layer.weight)
    constant_fill_(layer.bias, 0.0)
    return layer


@BOX_HEADS.register("fast_rcnn_heads.roi_2mlp_head")
class MLPHead(nn.Module):
    """`roi_2mlp_head`: flatten, fc6 + ReLU, fc7 + ReLU."""

    def __init__(self, dim_in: int, resolution: int, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.fc6 = _linear(dim_in * resolution * resolution, hidden_dim)
        self.fc7 = _linear(hidden_dim, hidden_dim)
        self.dim_out = hidden_dim

    @classmethod
    def from_cfg(cls, cfg, dim_in: int) -> MLPHead:
        """FAST_RCNN.ROI_XFORM_RESOLUTION and MLP_HEAD_DIM."""
        return cls(dim_in, cfg.FAST_RCNN.ROI_XFORM_RESOLUTION, cfg.FAST_RCNN.MLP_HEAD_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc6(x.flatten(1)))
        return torch.relu(self.fc7(x))

    def detectron_weight_mapping(self) -> WeightMapping:
        return {"fc6.weight": "fc6_w", "fc6.bias": "fc6_b", "fc7.weight": "fc7_w", "fc7.bias": "fc7_b"}, []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """torchvision's TwoMLPHead uses the same names."""
        return {f"{layer}.{t}": f"{layer}.{t}" for layer in ("fc6", "fc7") for t in ("weight", "bias")}


@BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_gn_head", use_gn=True)
@BOX_HEADS.register("fast_rcnn_heads.roi_Xconv1fc_head", use_gn=False)
class ConvFCHead(nn.Module):
    """`roi_Xconv1fc_head` (and `_gn_head`): N 3x3 convs + ReLU, then one fc + ReLU."""

    def __init__(
        self,
        dim_in: int,
        resolution: int,
        num_convs: int = 4,
        conv_dim: int = 256,
        hidden_dim: int = 1024,
        use_gn: bool = False,
        gn_dim_per_gp: int = -1,
        gn_num_groups: int = 32,
        gn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.use_gn = use_gn
        convs: list[nn.Module] = []
        dim = dim_in
        for _ in range(num_convs):
            conv = nn.Conv2d(dim, conv_dim, 3, padding=1, bias=not use_gn)
            msra_fill_(conv.weight)
            if conv.bias is not None:
                constant_fill_(conv.bias, 0.0)
            convs.append(conv)
            if use_gn:
                convs.append(group_norm(conv_dim, gn_dim_per_gp, gn_num_groups, gn_eps))
            convs.append(nn.ReLU(inplace=True))
            dim = conv_dim
        self.convs = nn.Sequential(*convs)
        self.fc6 = _linear(dim * resolution * resolution, hidden_dim)
        self.dim_out = hidden_dim

    @classmethod
    def from_cfg(cls, cfg, dim_in: int, use_gn: bool) -> ConvFCHead:
        """FAST_RCNN.ROI_XFORM_RESOLUTION / NUM_STACKED_CONVS / CONV_HEAD_DIM / MLP_HEAD_DIM, GROUP_NORM.*."""
        fast = cfg.FAST_RCNN
        gn = GroupNormSettings.from_cfg(cfg)
        return cls(
            dim_in,
            fast.ROI_XFORM_RESOLUTION,
            num_convs=fast.NUM_STACKED_CONVS,
            conv_dim=fast.CONV_HEAD_DIM,
            hidden_dim=fast.MLP_HEAD_DIM,
            use_gn=use_gn,
            gn_dim_per_gp=gn.dim_per_gp,
            gn_num_groups=gn.num_groups,
            gn_eps=gn.eps,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc6(self.convs(x).flatten(1)))

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping: dict[str, str] = {}
        conv_index = 0
        for name, module in self.convs.named_children():
            if isinstance(module, nn.Conv2d):
                conv_index += 1
                mapping.update(conv_mapping(f"convs.{name}", module, f"head_conv{conv_index}"))
            elif isinstance(module, nn.GroupNorm):
                mapping.update(norm_mapping(f"convs.{name}", module, f"head_conv{conv_index}_gn"))
        mapping.update({"fc6.weight": "fc6_w", "fc6.bias": "fc6_b"})
        return mapping, []


@BOX_HEADS.register("ResNet.ResNet_roi_conv5_head")
class ResNetRoIConv5Head(nn.Module):
    """`ResNet_roi_conv5_head` (C4 models): res5 on pooled RoIs, then 7x7 average pooling."""

    def __init__(self, res5: nn.Module) -> None:
        super().__init__()
        self.res5 = res5
        self.dim_out = res5.dim_out

    @classmethod
    def from_cfg(cls, cfg, dim_in: int) -> ResNetRoIConv5Head:
        """RESNETS.* (res5 as in the body) at FAST_RCNN.ROI_XFORM_RESOLUTION, dilation 1."""
        return cls(ResNetBlockSettings.from_cfg(cfg).res5_head(dim_in, cfg.FAST_RCNN.ROI_XFORM_RESOLUTION))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_map(x)[0]

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled vector [R, 2048], res5 output map) so a mask head can share res5 (v0upshare)."""
        res5 = self.res5(x)
        # Detectron's res5_pool is a 7x7 average over the 7x7 res5 output: a global mean
        return F.adaptive_avg_pool2d(res5, 1).flatten(1), res5

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping, orphans = self.res5.detectron_weight_mapping()
        return add_prefix(mapping, "res5"), orphans


class FastRCNNOutputs(nn.Module):
    """Class scores [R, num_classes] and box deltas [R, 4 * num_classes] (or [R, 8] agnostic)."""

    def __init__(self, dim_in: int, num_classes: int, class_agnostic_bbox_reg: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_agnostic_bbox_reg = class_agnostic_bbox_reg
        self.cls_score = nn.Linear(dim_in, num_classes)
        self.bbox_pred = nn.Linear(dim_in, 4 * (2 if class_agnostic_bbox_reg else num_classes))
        gaussian_fill_(self.cls_score.weight, 0.01)
        constant_fill_(self.cls_score.bias, 0.0)
        gaussian_fill_(self.bbox_pred.weight, 0.001)
        constant_fill_(self.bbox_pred.bias, 0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)

    def detectron_weight_mapping(self) -> WeightMapping:
        return {
            "cls_score.weight": "cls_score_w",
            "cls_score.bias": "cls_score_b",
            "bbox_pred.weight": "bbox_pred_w",
            "bbox_pred.bias": "bbox_pred_b",
        }, []
