"""ResNet / ResNeXt conv bodies (Detectron's ``ResNet.ResNet*_conv{4,5}_body``).

A body runs the stem and stages res2..res4 (conv4 bodies) or res2..res5 (conv5
bodies). ``forward(x)`` returns the maps named by ``out_features`` (default: the last
stage only, e.g. ``{"res4": ...}`` for a C4 model); FPN asks for every stage.
"""

from collections.abc import Sequence

import torch
from torch import nn

from ...nn import (
    DEFAULT_GN,
    FrozenBatchNorm2d,
    GroupNormSettings,
    WeightMapping,
    add_prefix,
    check_norm_kind,
)
from ..levels import ShapeSpec
from ..registry import BODIES
from .resnet_blocks import ResNetStem, ResStage, stage_dim_inner, stage_dim_out
from .resnet_cfg import ResNetBlockSettings, freeze_at_from_cfg

# Blocks per stage (res2, res3, res4, res5) of each depth.
RESNET_BLOCK_COUNTS = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


class ResNetBody(nn.Module):
    """ResNet/ResNeXt body from the input image up to res4 or res5.

    Args:
        block_counts: blocks of res2..res4 (3 numbers: a conv4 body, output stride 16)
            or res2..res5 (4 numbers: a conv5 body, output stride 32).
        num_groups, width_per_group: ResNeXt cardinality and base width; the bottleneck
            width of ``res<i>`` is ``num_groups * width_per_group * 2^(i-2)``.
        stride_1x1: put each stage's stride on the first 1x1 conv (MSRA, Detectron's
            default) instead of the 3x3 conv (torchvision, Caffe2).
        res5_dilation: dilation of every 3x3 conv in res5; with 2, res5 keeps stride 16.
        freeze_at: 0 freezes nothing, 1 the stem, ``k`` >= 2 the stem and res2..res<k>
            (Detectron's FREEZE_AT): their parameters get ``requires_grad=False`` and
            their BatchNorms become FrozenBatchNorm2d.
        norm: 'AffineChannel' (Detectron, always frozen), 'FrozenBN' (torchvision),
            'BN' (trainable BatchNorm2d) or 'GN' (GroupNorm with ``gn``).
        out_features: stage names forward() returns (default: the last stage).

    ``output_shape()`` gives channels and stride of every returned map; per stage
    ``stage_names`` ('res2', ...), ``stage_dims``, ``stage_strides`` and
    ``stage_blob_names`` (Detectron output blobs such as 'res4_5_sum').
    """

    def __init__(
        self,
        block_counts: Sequence[int],
        num_groups: int = 1,
        width_per_group: int = 64,
        stride_1x1: bool = True,
        res5_dilation: int = 1,
        freeze_at: int = 2,
        norm: str = "AffineChannel",
        gn: GroupNormSettings = DEFAULT_GN,
        out_features: Sequence[str] | None = None,
    ):
        super().__init__()
        block_counts = tuple(int(n) for n in block_counts)
        if len(block_counts) not in (3, 4):
            raise ValueError(
                f"ResNetBody: block_counts needs 3 (conv4 body) or 4 (conv5 body) numbers, got {block_counts}"
            )
        last_stage = len(block_counts) + 1
        if not 0 <= freeze_at <= last_stage:
            raise ValueError(
                f"ResNetBody: freeze_at (FREEZE_AT) must be in 0..{last_stage} for a "
                f"conv{last_stage} body, got {freeze_at}"
            )
        if res5_dilation not in (1, 2):
            raise ValueError(f"ResNetBody: res5_dilation (RESNETS.RES5_DILATION) must be 1 or 2, got {res5_dilation}")
        self.norm_kind = check_norm_kind(norm)
        self.block_counts = block_counts
        self.freeze_at = freeze_at

        self.stem = ResNetStem(norm, gn)
        dim_in = self.stem.dim_out
        stride = 4
        self.stage_names: list[str] = []
        self.stage_dims: list[int] = []
        self.stage_strides: list[int] = []
        for stage_index, num_blocks in zip(range(2, last_stage + 1), block_counts):
            dilation = res5_dilation if stage_index == 5 else 1
            # res2 follows the stem's max-pool and keeps its stride; a dilated res5
            # replaces its stride by the dilation (Detectron's add_residual_block rule).
            first_stride = 1 if stage_index == 2 or dilation > 1 else 2
            stage = ResStage(
                stage_index,
                num_blocks,
                dim_in,
                stage_dim_out(stage_index),
                stage_dim_inner(stage_index, num_groups, width_per_group),
                first_stride=first_stride,
                dilation=dilation,
                num_groups=num_groups,
                stride_1x1=stride_1x1,
                norm=norm,
                gn=gn,
            )
            name = f"res{stage_index}"
            self.add_module(name, stage)
            stride *= first_stride
            dim_in = stage.dim_out
            self.stage_names.append(name)
            self.stage_dims.append(stage.dim_out)
            self.stage_strides.append(stride)
        self.out_features = list(out_features) if out_features is not None else self.stage_names[-1:]
        unknown = [name for name in self.out_features if name not in self.stage_names]
        if unknown or not self.out_features:
            raise ValueError(f"ResNetBody: out_features {self.out_features} must be among {self.stage_names}")
        self._freeze(freeze_at)

    @property
    def stage_blob_names(self) -> list[str]:
        return [getattr(self, name).blob_name for name in self.stage_names]

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Channels and stride of each map forward() returns, finest first."""
        shapes = {n: ShapeSpec(c, s) for n, c, s in zip(self.stage_names, self.stage_dims, self.stage_strides)}
        return {name: shapes[name] for name in self.out_features}

    def blob_name(self, feature: str) -> str:
        """Detectron name of a stage's output map ('res4' -> 'res4_5_sum')."""
        return getattr(self, feature).blob_name

    def _freeze(self, freeze_at: int) -> None:
        frozen = [self.stem] if freeze_at >= 1 else []
        frozen += [getattr(self, f"res{i}") for i in range(2, freeze_at + 1)]
        for module in frozen:
            FrozenBatchNorm2d.convert_frozen_batchnorm(module)
            for param in module.parameters():
                param.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The maps of ``out_features`` (finest first); stages after the last one are skipped."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNetBody expects an image batch [N, 3, H, W], got shape {tuple(x.shape)}")
        x = self.stem(x)
        wanted = set(self.out_features)
        last = max(self.stage_names.index(name) for name in wanted)
        features = {}
        for name in self.stage_names[: last + 1]:
            x = getattr(self, name)(x)
            if name in wanted:
                features[name] = x
        return features

    def detectron_weight_mapping(self) -> WeightMapping:
        """Detectron blob names of every weight (``res2_0_branch2a_w``, ...).

        Orphans are the ImageNet classifier (``fc1000_*`` for BN-style models,
        ``pred_*`` for GN models) and the zero conv biases of Caffe ImageNet files.
        """
        mapping, orphans = self.stem.detectron_weight_mapping()
        mapping = add_prefix(mapping, "stem")
        orphans = list(orphans)
        for name in self.stage_names:
            stage_mapping, stage_orphans = getattr(self, name).detectron_weight_mapping()
            mapping |= add_prefix(stage_mapping, name)
            orphans += stage_orphans
        orphans += ["pred_w", "pred_b"] if self.norm_kind == "GN" else ["fc1000_w", "fc1000_b"]
        return mapping, orphans

    def torchvision_weight_mapping(self) -> dict[str, str]:
        """Names of a torchvision ``resnet*``/``resnext*`` state dict for our weights.

        Covers conv weights and every norm tensor (for BN-style norms also running
        statistics). Only meaningful for ``stride_1x1=False`` bodies, torchvision's
        layout.
        """
        mapping = {"stem.conv1.weight": "conv1.weight"}
        norm_tensors = ("weight", "bias", "running_mean", "running_var")
        for tensor in norm_tensors:
            mapping[f"stem.norm1.{tensor}"] = f"bn1.{tensor}"
        for stage_number, name in enumerate(self.stage_names, start=1):
            for block_index, block in enumerate(getattr(self, name)):
                ours, theirs = f"{name}.{block_index}", f"layer{stage_number}.{block_index}"
                for index in (1, 2, 3):
                    mapping[f"{ours}.conv{index}.weight"] = f"{theirs}.conv{index}.weight"
                    for tensor in norm_tensors:
                        mapping[f"{ours}.norm{index}.{tensor}"] = f"{theirs}.bn{index}.{tensor}"
                if block.shortcut is not None:
                    mapping[f"{ours}.shortcut.conv.weight"] = f"{theirs}.downsample.0.weight"
                    for tensor in norm_tensors:
                        mapping[f"{ours}.shortcut.norm.{tensor}"] = f"{theirs}.downsample.1.{tensor}"
        own = set(self.state_dict())
        return {ours: theirs for ours, theirs in mapping.items() if ours in own}

    @classmethod
    def from_cfg(cls, cfg, block_counts: Sequence[int], out_features: Sequence[str] | None = None) -> "ResNetBody":
        """Build from Detectron's RESNETS.*, GROUP_NORM.* and FREEZE_AT keys."""
        return cls(
            block_counts,
            res5_dilation=int(cfg.RESNETS.RES5_DILATION),
            freeze_at=freeze_at_from_cfg(cfg),
            out_features=out_features,
            **ResNetBlockSettings.from_cfg(cfg).kwargs(),
        )


# Detectron's ResNet bodies: ResNet-<depth> up to res<num_stages>.
for _depth, _num_stages in ((50, 4), (50, 5), (101, 4), (101, 5), (152, 5)):
    BODIES.register(
        f"ResNet.ResNet{_depth}_conv{_num_stages}_body", block_counts=RESNET_BLOCK_COUNTS[_depth][: _num_stages - 1]
    )(ResNetBody)
