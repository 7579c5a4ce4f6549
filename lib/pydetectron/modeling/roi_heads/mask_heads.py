"""Mask heads keyed by Detectron's MRCNN.ROI_MASK_HEAD names, and the mask output layer.

A head maps pooled RoI features to a map [R, dim_out, 2S, 2S] (its last layer is the
`conv5_mask` 2x2 transposed conv + ReLU); `MaskOutputs` turns that map into mask logits
[R, num_classes (or 1), M, M]. Each module owns its Detectron blob names; names starting
with `_[mask]_` follow Detectron's sharing rule (a file without them gives the unprefixed blob).
"""

from __future__ import annotations

import torch
from torch import nn

from pydetectron.nn import (
    GroupNormSettings,
    WeightMapping,
    constant_fill_,
    conv_mapping,
    gaussian_fill_,
    group_norm,
    msra_fill_,
    norm_mapping,
)

from ..backbones import ResNetBlockSettings
from .head_registries import MASK_HEADS
from .upsample import BilinearUpsample

CONV_INITS = ("GaussianFill", "MSRAFill")


def init_weight(weight: torch.Tensor, fill: str, std: float) -> None:
    """Detectron's (CONV_INIT, {'std': std}) weight fill."""
    if fill not in CONV_INITS:
        raise ValueError(f"CONV_INIT must be one of {CONV_INITS}, got {fill!r}")
    if fill == "MSRAFill":
        msra_fill_(weight)
    else:
        gaussian_fill_(weight, std)


class MaskUpsample(nn.Module):
    """`conv5_mask`: 2x2 stride-2 transposed conv + ReLU, doubling the RoI map's size."""

    def __init__(self, dim_in: int, dim_out: int, fill: str = "GaussianFill") -> None:
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(dim_in, dim_out, 2, stride=2)
        init_weight(self.conv5_mask.weight, fill, 0.001)
        constant_fill_(self.conv5_mask.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv5_mask(x))


@MASK_HEADS.register("mask_rcnn_heads.mask_rcnn_fcn_head_v1up", num_convs=2, use_gn=False)
@MASK_HEADS.register("mask_rcnn_heads.mask_rcnn_fcn_head_v1up4convs_gn", num_convs=4, use_gn=True)
@MASK_HEADS.register("mask_rcnn_heads.mask_rcnn_fcn_head_v1up4convs", num_convs=4, use_gn=False)
class MaskFCNHead(nn.Module):
    """v1upXconvs (and its GN twin): X 3x3 convs + ReLU, then `conv5_mask`.

    Blob names: `_[mask]_fcn<i>` (GN: `_mask_fcn<i>` + `_gn_s/_b`), `conv5_mask`. As in
    Detectron, the GN variant has no dilation and no conv bias.
    """

    def __init__(
        self,
        dim_in: int,
        num_convs: int,
        dim_reduced: int = 256,
        dilation: int = 1,
        fill: str = "GaussianFill",
        use_gn: bool = False,
        gn: GroupNormSettings | None = None,
    ) -> None:
        super().__init__()
        gn = gn or GroupNormSettings()
        if use_gn:
            dilation = 1
        self.use_gn = use_gn
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(num_convs):
            conv = nn.Conv2d(
                dim_in if i == 0 else dim_reduced, dim_reduced, 3, padding=dilation, dilation=dilation, bias=not use_gn
            )
            init_weight(conv.weight, fill, 0.001)
            if conv.bias is not None:
                constant_fill_(conv.bias, 0.0)
            self.convs.append(conv)
            if use_gn:
                self.norms.append(group_norm(dim_reduced, gn.dim_per_gp, gn.num_groups, gn.eps))
        self.upsample = MaskUpsample(dim_reduced, dim_reduced, fill)
        self.dim_out = dim_reduced

    @classmethod
    def from_cfg(cls, cfg, dim_in: int, box_head: nn.Module, num_convs: int, use_gn: bool) -> MaskFCNHead:
        """MRCNN.DIM_REDUCED / DILATION / CONV_INIT and GROUP_NORM.*; the box head is not used."""
        mrcnn = cfg.MRCNN
        return cls(
            dim_in,
            num_convs,
            dim_reduced=int(mrcnn.DIM_REDUCED),
            dilation=int(mrcnn.DILATION),
            fill=str(mrcnn.CONV_INIT),
            use_gn=use_gn,
            gn=GroupNormSettings.from_cfg(cfg),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.use_gn:
                x = self.norms[i](x)
            x = torch.relu(x)
        return self.upsample(x)

    def detectron_weight_mapping(self) -> WeightMapping:
        prefix = "_mask_fcn" if self.use_gn else "_[mask]_fcn"
        mapping: dict[str, str] = {}
        for i, conv in enumerate(self.convs):
            mapping |= conv_mapping(f"convs.{i}", conv, f"{prefix}{i + 1}")
            if self.use_gn:
                mapping |= norm_mapping(f"norms.{i}", self.norms[i], f"{prefix}{i + 1}_gn")
        mapping |= conv_mapping("upsample.conv5_mask", self.upsample.conv5_mask, "conv5_mask")
        return mapping, []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """torchvision's MaskRCNNHeads (`<i>.0`) and MaskRCNNPredictor's `conv5_mask`."""
        mapping = {}
        for i in range(len(self.convs)):
            for tensor in ("weight", "bias"):
                mapping[f"convs.{i}.{tensor}"] = f"mask_head.{i}.0.{tensor}"
        for tensor in ("weight", "bias"):
            mapping[f"upsample.conv5_mask.{tensor}"] = f"mask_predictor.conv5_mask.{tensor}"
        return mapping


@MASK_HEADS.register("mask_rcnn_heads.mask_rcnn_fcn_head_v0upshare", shared_res5=True)
@MASK_HEADS.register("mask_rcnn_heads.mask_rcnn_fcn_head_v0up", shared_res5=False)
class MaskRes5Head(nn.Module):
    """v0up / v0upshare: a ResNet res5 stage on the pooled RoIs, then `conv5_mask`.

    With `shared_res5` (v0upshare) the res5 stage is the box head's own module (same weights,
    Detectron shares `_[mask]_res5*` with `res5*`), kept out of this module's parameters; in
    training the box head's res5 output of the foreground RoIs is used directly.
    """

    def __init__(self, res5: nn.Module, dim_reduced: int, fill: str, shared_res5: bool = False) -> None:
        super().__init__()
        if shared_res5:
            self._shared = [res5]  # a plain list: not registered twice
        else:
            self.res5 = res5
        self.shared_res5 = shared_res5
        self.upsample = MaskUpsample(res5.dim_out, dim_reduced, fill)
        self.dim_out = dim_reduced

    @classmethod
    def from_cfg(cls, cfg, dim_in: int, box_head: nn.Module, shared_res5: bool) -> MaskRes5Head:
        """v0up: its own res5 (RESNETS.*) at MRCNN.ROI_XFORM_RESOLUTION / DILATION, Gaussian
        `conv5_mask`; v0upshare: the C4 box head's res5 and MRCNN.CONV_INIT."""
        mrcnn = cfg.MRCNN
        if not shared_res5:
            settings = ResNetBlockSettings.from_cfg(cfg)
            res5 = settings.res5_head(dim_in, int(mrcnn.ROI_XFORM_RESOLUTION), int(mrcnn.DILATION))
            return cls(res5, int(mrcnn.DIM_REDUCED), "GaussianFill")
        if not hasattr(box_head, "forward_with_map"):
            raise ValueError(
                "MRCNN.ROI_MASK_HEAD mask_rcnn_fcn_head_v0upshare shares res5 with the box head: it needs "
                f"FAST_RCNN.ROI_BOX_HEAD ResNet.ResNet_roi_conv5_head, got {cfg.FAST_RCNN.ROI_BOX_HEAD!r}"
            )
        if int(mrcnn.ROI_XFORM_RESOLUTION) != int(cfg.FAST_RCNN.ROI_XFORM_RESOLUTION):
            raise ValueError(
                "mask_rcnn_fcn_head_v0upshare needs MRCNN.ROI_XFORM_RESOLUTION == FAST_RCNN.ROI_XFORM_RESOLUTION "
                f"(got {mrcnn.ROI_XFORM_RESOLUTION} and {cfg.FAST_RCNN.ROI_XFORM_RESOLUTION})"
            )
        if int(mrcnn.DILATION) != 1:
            raise ValueError(
                "mask_rcnn_fcn_head_v0upshare reuses the box head's res5 (dilation 1): set MRCNN.DILATION: 1"
            )
        return cls(box_head.res5, int(mrcnn.DIM_REDUCED), str(mrcnn.CONV_INIT), shared_res5=True)

    @property
    def stage(self) -> nn.Module:
        return self._shared[0] if self.shared_res5 else self.res5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.stage(x))

    def forward_from_res5(self, res5_map: torch.Tensor) -> torch.Tensor:
        return self.upsample(res5_map)

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping = {
            "upsample.conv5_mask.weight": "conv5_mask_w",
            "upsample.conv5_mask.bias": "conv5_mask_b",
        }
        orphans: list[str] = []
        if not self.shared_res5:
            res5_mapping, res5_orphans = self.res5.detectron_weight_mapping()
            mapping |= {f"res5.{name}": f"_[mask]_{blob}" for name, blob in res5_mapping.items()}
            orphans += [f"_[mask]_{blob}" for blob in res5_orphans]
        return mapping, orphans


class MaskOutputs(nn.Module):
    """`mask_fcn_logits`: 1x1 conv (or, with `use_fc`, an FC layer) to one channel per class
    (or one for class-agnostic masks), then Detectron's fixed bilinear upsampling by
    `upsample_ratio` when it is > 1."""

    def __init__(
        self,
        dim_in: int,
        num_classes: int,
        resolution: int,
        class_specific: bool = True,
        fill: str = "GaussianFill",
        upsample_ratio: int = 1,
        use_fc: bool = False,
    ) -> None:
        super().__init__()
        self.num_outputs = num_classes if class_specific else 1
        self.resolution = resolution
        self.use_fc = use_fc
        if use_fc:
            map_size = resolution // upsample_ratio
            self.mask_fcn_logits = nn.Linear(dim_in * map_size * map_size, self.num_outputs * resolution**2)
            gaussian_fill_(self.mask_fcn_logits.weight, 0.001)
            self.upsample = None
        else:
            self.mask_fcn_logits = nn.Conv2d(dim_in, self.num_outputs, 1)
            # Gaussian for class-agnostic masks: fan-in fills can diverge (Detectron's note)
            init_weight(self.mask_fcn_logits.weight, fill if class_specific else "GaussianFill", 0.001)
            self.upsample = (
                BilinearUpsample(self.num_outputs, upsample_ratio, "mask_fcn_logits_up") if upsample_ratio > 1 else None
            )
        constant_fill_(self.mask_fcn_logits.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_fc:
            logits = self.mask_fcn_logits(x.flatten(1))
            return logits.view(-1, self.num_outputs, self.resolution, self.resolution)
        logits = self.mask_fcn_logits(x)
        return self.upsample(logits) if self.upsample is not None else logits

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping = {"mask_fcn_logits.weight": "mask_fcn_logits_w", "mask_fcn_logits.bias": "mask_fcn_logits_b"}
        return mapping, self.upsample.blob_names() if self.upsample is not None else []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        return {f"mask_fcn_logits.{t}": f"mask_predictor.mask_fcn_logits.{t}" for t in ("weight", "bias")}
