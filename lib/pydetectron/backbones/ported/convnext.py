"""ConvNeXt (Liu et al. 2022) and ConvNeXt-V2 (Woo et al. 2023, Global Response Norm); maps at
strides 4, 8, 16, 32.

Names are timm's (`stem.0`, `stages.i.downsample.1`, `stages.i.blocks.j.conv_dw`,
`mlp.fc1`, `mlp.grn.weight`, `gamma`, `head.norm`); the ConvNeXt / ConvNeXt-V2
repositories' layout (`downsample_layers`, `dwconv`, `pwconv1`, `grn.gamma` shaped
[1, 1, 1, C]), their detection checkpoints (`backbone.` prefix, output norms `norm0..3`)
and timm's 1x1-conv MLP weights of the small variants are converted on load.

Detection form: `out_norms=True` adds a channel LayerNorm on each stage output (the ConvNeXt
detection backbone's `norm0..3`) and drops the classification head norm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .checkpoint import LoadReport, PortedBackbone, strip_prefix
from .layers import DropPath, GrnMlp, LayerNorm2d, Mlp, drop_path_rates

OFFICIAL_RENAMES = (("dwconv.", "conv_dw."), ("pwconv1.", "mlp.fc1."), ("pwconv2.", "mlp.fc2."))


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv -> LayerNorm -> MLP (4x, GELU[, GRN]) -> [LayerScale] + residual."""

    def __init__(self, dim: int, ls_init_value: float | None, use_grn: bool, drop_path: float, mlp_ratio: float = 4):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(mlp_ratio * dim)
        self.mlp = GrnMlp(dim, hidden) if use_grn else Mlp(dim, hidden)
        self.gamma = nn.Parameter(torch.full((dim,), float(ls_init_value))) if ls_init_value is not None else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return self.drop_path(x) + shortcut


class ConvNeXtStage(nn.Module):
    """[LayerNorm + 2x2/2 conv downsampling] then blocks."""

    def __init__(
        self, in_dim: int, out_dim: int, depth: int, downsample: bool, ls: float | None, grn: bool, rates: list[float]
    ):
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(LayerNorm2d(in_dim), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*(ConvNeXtBlock(out_dim, ls, grn, rates[i]) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class PoolNormHead(nn.Module):
    """ConvNeXt's pre-logits: global average pool, then LayerNorm (timm's `head.norm`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.mean(dim=(2, 3)))


class ConvNeXt(PortedBackbone):
    """ConvNeXt / ConvNeXt-V2 with timm's names; `get_feature_maps` -> 4 maps at strides 4, 8, 16, 32."""

    ignored_keys = (r"^head\.fc\.", r"^head\.pre_logits\.", r"^norm_pre\.")

    def __init__(
        self,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        in_chans: int = 3,
        ls_init_value: float | None = 1e-6,
        use_grn: bool = False,
        patch_size: int = 4,
        drop_path_rate: float = 0.0,
        out_norms: bool = False,
    ):
        super().__init__()
        if len(depths) != len(dims):
            raise ValueError(f"depths {tuple(depths)} and dims {tuple(dims)} differ in length")
        self.depths = tuple(int(d) for d in depths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=patch_size, stride=patch_size), LayerNorm2d(dims[0])
        )
        rates = drop_path_rates(drop_path_rate, sum(depths))
        self.stages = nn.ModuleList()
        start = 0
        for i, depth in enumerate(self.depths):
            in_dim = dims[max(i - 1, 0)]
            self.stages.append(
                ConvNeXtStage(in_dim, dims[i], depth, i > 0, ls_init_value, use_grn, rates[start : start + depth])
            )
            start += depth
        if out_norms:
            self.out_norms = nn.ModuleList(LayerNorm2d(d) for d in dims)
            self.head = None
        else:
            self.out_norms = None
            self.head = PoolNormHead(dims[-1])
        self.out_channels_list = tuple(int(d) for d in dims)
        self.stride = patch_size * 2 ** (len(dims) - 1)
        self._patch_size = patch_size
        # layer-wise LR decay as the ConvNeXt detection recipe: the third stage in groups of 3 blocks
        self._stage2_groups = math.ceil(self.depths[2] / 3) if len(self.depths) == 4 else 0
        self.num_lr_layers = 3 + self._stage2_groups + 1
        self.optional_keys = (r"^out_norms\.", r"^head\.norm\.")  # FCMAE checkpoints have no head norm
        if out_norms:
            self.ignored_keys = ConvNeXt.ignored_keys + (r"^head\.norm\.",)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def feature_strides(self) -> tuple[int, ...]:
        return tuple(self._patch_size * 2**i for i in range(len(self.depths)))

    def _stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs [B, C_i, H/s, W/s] at strides 4, 8, 16, 32 (each LayerNorm-ed with `out_norms`)."""
        maps = self._stage_outputs(x)
        if self.out_norms is not None:
            maps = [norm(m) for norm, m in zip(self.out_norms, maps)]
        return maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map [B, C, H/32, W/32] (timm's `forward_features`)."""
        return self._stage_outputs(x)[-1]

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-logits embedding [B, C]: LayerNorm of the spatial mean of the last stage."""
        if self.head is None:
            raise RuntimeError("a ConvNeXt built with out_norms=True (detection) has no classification head norm")
        return self.head(self.forward_features(x))

    def convert_state_dict(self, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        state = strip_prefix(state, "backbone.", report)  # detection checkpoints
        repository_layout = any(k.startswith("downsample_layers.") for k in state)
        own = self.state_dict()
        converted = {}
        for key, value in state.items():
            if key.startswith("norm") and key[4:5].isdigit():  # detection output norms norm0..norm3
                key = f"out_norms.{key[4]}.{key.split('.', 1)[1]}"
            elif repository_layout:
                key, value = _from_repository(key, value)
            if key.endswith((".mlp.fc1.weight", ".mlp.fc2.weight")) and value.ndim == 4:  # timm's 1x1-conv MLPs
                value = value.flatten(1)
            if key in own and value.ndim != own[key].ndim and value.numel() == own[key].numel():
                value = value.reshape(own[key].shape)
            converted[key] = value
        return converted

    def lr_layer_id(self, name: str) -> int:
        if name.startswith("stem."):
            return 0
        if name.startswith("stages."):
            parts = name.split(".")
            stage = int(parts[1])
            if stage < 2:
                return stage + 1
            if stage == 2:
                return 3 if parts[2] == "downsample" else 3 + int(parts[3]) // 3
            return self.num_lr_layers - 1
        return self.num_lr_layers


def _from_repository(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """One ConvNeXt / ConvNeXt-V2 repository entry -> timm's name (and shape)."""
    parts = key.split(".")
    if parts[0] == "downsample_layers":
        rest = ".".join(parts[2:])
        key = f"stem.{rest}" if parts[1] == "0" else f"stages.{parts[1]}.downsample.{rest}"
    elif parts[0] == "stages":
        key = f"stages.{parts[1]}.blocks.{parts[2]}." + ".".join(parts[3:])
        for old, new in OFFICIAL_RENAMES:
            key = key.replace(old, new)
        if ".grn." in key:
            key = key.replace(".grn.gamma", ".mlp.grn.weight").replace(".grn.beta", ".mlp.grn.bias")
            value = value.reshape(-1)
    elif parts[0] == "norm":
        key = "head." + key
    elif parts[0] == "head":
        key = "head.fc." + ".".join(parts[1:])
    return key, value
