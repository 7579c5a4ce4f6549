"""Keypoint heads keyed by Detectron's KRCNN.ROI_KEYPOINTS_HEAD names, and the heatmap outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron.nn import WeightMapping, constant_fill_, conv_mapping, gaussian_fill_

from ..backbones import ResNetBlockSettings
from .head_registries import KEYPOINT_HEADS
from .mask_heads import init_weight
from .upsample import BilinearUpsample

UPSAMPLE_MODES = ("deconv", "interpolate")


@KEYPOINT_HEADS.register("keypoint_rcnn_heads.roi_pose_head_v1convX")
class KeypointConvHead(nn.Module):
    """roi_pose_head_v1convX: X convs (`conv_fcn<i>`) + ReLU."""

    def __init__(self, dim_in: int, num_convs: int = 8, dim: int = 512, kernel: int = 3, fill: str = "GaussianFill"):
        super().__init__()
        self.convs = nn.ModuleList()
        for i in range(num_convs):
            conv = nn.Conv2d(dim_in if i == 0 else dim, dim, kernel, padding=kernel // 2)
            init_weight(conv.weight, fill, 0.01)
            constant_fill_(conv.bias, 0.0)
            self.convs.append(conv)
        self.dim_out = dim if num_convs else dim_in

    @classmethod
    def from_cfg(cls, cfg, dim_in: int) -> KeypointConvHead:
        """KRCNN.NUM_STACKED_CONVS / CONV_HEAD_DIM / CONV_HEAD_KERNEL / CONV_INIT."""
        krcnn = cfg.KRCNN
        return cls(
            dim_in,
            num_convs=int(krcnn.NUM_STACKED_CONVS),
            dim=int(krcnn.CONV_HEAD_DIM),
            kernel=int(krcnn.CONV_HEAD_KERNEL),
            fill=str(krcnn.CONV_INIT),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping: dict[str, str] = {}
        for i, conv in enumerate(self.convs):
            mapping |= conv_mapping(f"convs.{i}", conv, f"conv_fcn{i + 1}")
        return mapping, []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """torchvision's KeypointRCNNHeads: convs at Sequential indices 0, 2, 4, ..."""
        names = ("weight", "bias")
        return {f"convs.{i}.{t}": f"keypoint_head.{2 * i}.{t}" for i in range(len(self.convs)) for t in names}


@KEYPOINT_HEADS.register("keypoint_rcnn_heads.ResNet_roi_conv5_head_for_keypoints")
class KeypointRes5Head(nn.Module):
    """ResNet_roi_conv5_head_for_keypoints: a res5 stage (`_[pose]_res5*`, loadable from `res5*`)."""

    def __init__(self, res5: nn.Module) -> None:
        super().__init__()
        self.res5 = res5
        self.dim_out = res5.dim_out

    @classmethod
    def from_cfg(cls, cfg, dim_in: int) -> KeypointRes5Head:
        """RESNETS.* res5 at KRCNN.ROI_XFORM_RESOLUTION / DILATION."""
        krcnn = cfg.KRCNN
        settings = ResNetBlockSettings.from_cfg(cfg)
        return cls(settings.res5_head(dim_in, int(krcnn.ROI_XFORM_RESOLUTION), int(krcnn.DILATION)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res5(x)

    def detectron_weight_mapping(self) -> WeightMapping:
        mapping, orphans = self.res5.detectron_weight_mapping()
        return {f"res5.{k}": f"_[pose]_{v}" for k, v in mapping.items()}, [f"_[pose]_{o}" for o in orphans]


class KeypointOutputs(nn.Module):
    """Heatmap logits [R, K, S, S]: optional `kps_deconv` (+ ReLU), `kps_score_lowres` (a 2x
    ConvTranspose with USE_DECONV_OUTPUT, else a 1x1 conv), then upsampling by `up_scale`:
    Detectron's fixed bilinear ConvTranspose ('deconv') or torchvision's bilinear
    F.interpolate ('interpolate')."""

    def __init__(
        self,
        dim_in: int,
        num_keypoints: int,
        use_deconv: bool = False,
        deconv_dim: int = 256,
        deconv_kernel: int = 4,
        use_deconv_output: bool = False,
        up_scale: int = 1,
        upsample_mode: str = "deconv",
        fill: str = "GaussianFill",
    ) -> None:
        super().__init__()
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f"KRCNN.UPSAMPLE_MODE must be one of {UPSAMPLE_MODES}, got {upsample_mode!r}")
        pad = deconv_kernel // 2 - 1
        self.kps_deconv = None
        if use_deconv:
            self.kps_deconv = nn.ConvTranspose2d(dim_in, deconv_dim, deconv_kernel, stride=2, padding=pad)
            gaussian_fill_(self.kps_deconv.weight, 0.01)
            constant_fill_(self.kps_deconv.bias, 0.0)
            dim_in = deconv_dim
        if use_deconv_output:
            self.score = nn.ConvTranspose2d(dim_in, num_keypoints, deconv_kernel, stride=2, padding=pad)
        else:
            self.score = nn.Conv2d(dim_in, num_keypoints, 1)
        init_weight(self.score.weight, fill, 0.001)
        constant_fill_(self.score.bias, 0.0)
        self.up_scale = int(up_scale)
        self.upsample_mode = upsample_mode
        self.upsample = (
            BilinearUpsample(num_keypoints, self.up_scale, "kps_score")
            if self.up_scale > 1 and upsample_mode == "deconv"
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kps_deconv is not None:
            x = torch.relu(self.kps_deconv(x))
        x = self.score(x)
        if self.up_scale <= 1:
            return x
        if self.upsample is not None:
            return self.upsample(x)
        return F.interpolate(x, scale_factor=float(self.up_scale), mode="bilinear", align_corners=False)

    def detectron_weight_mapping(self) -> WeightMapping:
        score_blob = "kps_score_lowres" if self.up_scale > 1 else "kps_score"
        mapping = conv_mapping("score", self.score, score_blob)
        if self.kps_deconv is not None:
            mapping |= conv_mapping("kps_deconv", self.kps_deconv, "kps_deconv")
        return mapping, self.upsample.blob_names() if self.upsample is not None else []

    def torchvision_weight_mapping(self) -> dict[str, str]:
        return {f"score.{t}": f"keypoint_predictor.kps_score_lowres.{t}" for t in ("weight", "bias")}
