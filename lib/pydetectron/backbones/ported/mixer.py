"""MLP-Mixer (Tolstikhin et al. 2021): token-mixing and channel-mixing MLPs over patch tokens.

The token-mixing MLPs are sized by the number of patches, so a Mixer runs at the one input
size it was built for (`img_size`, whole patches): it has no position embedding to
resample, and an input of another size is refused with a clear error. Feature maps: one
map, the last block's tokens (before the final norm) at stride `patch_size`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .checkpoint import PortedBackbone
from .layers import DropPath, Mlp, PatchEmbed, resolve_block_indices, to_2tuple, tokens_to_map


class MixerBlock(nn.Module):
    """Residual token-mixing MLP (across patches) then channel-mixing MLP (across channels)."""

    def __init__(self, dim: int, seq_len: int, mlp_ratio: tuple[float, float], drop_path: float, eps: float):
        super().__init__()
        tokens_dim, channels_dim = int(mlp_ratio[0] * dim), int(mlp_ratio[1] * dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp_tokens = Mlp(seq_len, tokens_dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp_channels = Mlp(dim, channels_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class MlpMixer(PortedBackbone):
    """MLP-Mixer with timm's names (`stem.proj`, `blocks.i.mlp_tokens.fc1`, ...)."""

    ignored_keys = (r"^head\.",)

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 512,
        num_blocks: int = 8,
        mlp_ratio: tuple[float, float] = (0.5, 4.0),
        norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = int(patch_size)
        if self.img_size[0] % self.patch_size or self.img_size[1] % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        seq_len = self.grid_size[0] * self.grid_size[1]
        self.stem = PatchEmbed(patch_size, in_chans, embed_dim)
        rate = float(drop_path_rate)  # the Mixer paper uses one rate for every block
        self.blocks = nn.ModuleList(
            MixerBlock(embed_dim, seq_len, tuple(mlp_ratio), rate, norm_eps) for _ in range(num_blocks)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.out_channels_list = (embed_dim,)
        self.stride = self.patch_size
        self.num_lr_layers = num_blocks + 1

    @property
    def feature_strides(self) -> tuple[int, ...]:
        return (self.patch_size,)

    def _run_blocks(self, x: torch.Tensor, take: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.ndim != 4 or tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"MlpMixer: input {tuple(x.shape)} must be [N, C, {self.img_size[0]}, {self.img_size[1]}] "
                "(token-mixing MLPs fix the number of patches; build the model with img_size=...)"
            )
        tokens = self.stem(x).flatten(1, 2)
        wanted = set(take)
        maps = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in wanted:
                maps.append(tokens_to_map(tokens, self.grid_size))
        return tokens, maps

    def intermediate_maps(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Token maps [B, C, H/p, W/p] after each block in `indices` (no norm), in block order."""
        resolved = resolve_block_indices(indices, len(self.blocks))
        return self._run_blocks(x, resolved)[1]

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[the last block's tokens as a [B, C, H/p, W/p] map] (stride `patch_size`)."""
        return self.intermediate_maps(x, [-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, N, C] after the final norm."""
        return self.norm(self._run_blocks(x, ())[0])

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-logits embedding [B, C]: the mean of the normalised tokens."""
        return self.forward_features(x).mean(dim=1)

    def lr_layer_id(self, name: str) -> int:
        if name.startswith("stem."):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.num_lr_layers
