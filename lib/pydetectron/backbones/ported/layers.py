"""Building blocks shared by the ported families (ViT, Mixer, CaiT, Swin, ConvNeXt).

Parameter names follow timm's (`fc1`/`fc2`, `gamma`, `weight`/`bias`), so timm state dicts
load without renaming; the original repositories' names are mapped by each family's
`convert_state_dict`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("gelu", "gelu_tanh")


def make_activation(name: str) -> nn.Module:
    """`gelu` (exact erf GELU) or `gelu_tanh` (the tanh approximation some SigLIP models use)."""
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def drop_path_rates(rate: float, count: int) -> list[float]:
    """Stochastic-depth rate of each of `count` blocks, rising linearly from 0 to `rate`."""
    if count <= 1:
        return [float(rate)] * count
    return [float(rate) * i / (count - 1) for i in range(count)]


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability `rate` (training only)."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (CaiT, DeiT-3); channels last."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (ConvNeXt's `channels_first` LayerNorm)."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """Linear -> activation -> Linear, on the last dimension."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = make_activation(act_layer)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on an NHWC map: x + bias + weight * x * (|x|_HW / mean_C |x|_HW)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial_norm = x.norm(p=2, dim=(1, 2), keepdim=True)
        relative = spatial_norm / (spatial_norm.mean(dim=-1, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias, self.weight, x * relative)


class GrnMlp(nn.Module):
    """ConvNeXt-V2 MLP: Linear -> GELU -> GRN -> Linear on an NHWC map."""

    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.grn = GlobalResponseNorm(hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.grn(self.act(self.fc1(x))))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> NHWC embeddings (conv with kernel = stride = patch size).

    An input whose sides are not multiples of the patch size is zero-padded at the bottom
    and right first (as the Swin / ViTDet detection code does), so every pixel is covered.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, norm_eps: float | None = None):
        super().__init__()
        self.patch_size = int(patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if norm_eps is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.proj.in_channels:
            raise ValueError(
                f"PatchEmbed: expected an image batch [N, {self.proj.in_channels}, H, W], got {tuple(x.shape)}"
            )
        p = self.patch_size
        pad_h, pad_w = (-x.shape[2]) % p, (-x.shape[3]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def to_2tuple(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """`7` -> `(7, 7)`; a pair stays a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[B, H*W, C] patch tokens -> a contiguous [B, C, H, W] map."""
    b, n, c = tokens.shape
    if n != grid[0] * grid[1]:
        raise ValueError(f"{n} tokens do not fill a {grid[0]}x{grid[1]} grid")
    return tokens.reshape(b, grid[0], grid[1], c).permute(0, 3, 1, 2).contiguous()


def resolve_block_indices(indices: Sequence[int], depth: int) -> list[int]:
    """Block indices with negatives counted from the end; out-of-range ones are an error."""
    resolved = [i + depth if i < 0 else i for i in indices]
    if any(not 0 <= i < depth for i in resolved):
        raise ValueError(f"block indices {list(indices)} out of range for {depth} blocks")
    return resolved
