"""CaiT (Touvron et al. 2021): LayerScale + talking-heads self-attention over the patches, then
class-attention blocks in which only the class token attends to the patches.

Names are the DeiT repository's (also timm's): `blocks.i.gamma_1`, `attn.proj_l` /
`attn.proj_w` (talking heads), `blocks_token_only.j.attn.q/k/v`. The position embedding
covers the patches only (the class token joins later) and is resampled to `img_size` on
load and to the patch grid of any other input. Feature maps: one map, the last
self-attention block's patch tokens (before the class-attention stage) at stride `patch_size`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import LoadReport, PortedBackbone
from .layers import DropPath, Mlp, PatchEmbed, resolve_block_indices, to_2tuple, tokens_to_map
from .pos_embed import resample_abs_pos_embed, square_grid


class TalkingHeadAttention(nn.Module):
    """Self-attention whose logits and weights are mixed across heads (linear maps `proj_l`, `proj_w`)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_l = nn.Linear(num_heads, num_heads)
        self.proj_w = nn.Linear(num_heads, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).softmax(dim=-1)
        attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class ClassAttention(nn.Module):
    """Attention with the class token (first token) as the only query."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x[:, 0]).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        x_cls = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x_cls.transpose(1, 2).reshape(b, 1, c))


class LayerScaleBlock(nn.Module):
    """Pre-norm block with per-channel residual scales `gamma_1`, `gamma_2` and talking-heads attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float, drop_path: float, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = TalkingHeadAttention(dim, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class ClassAttentionBlock(nn.Module):
    """Updates the class token only: class attention over [cls, patches], then an MLP on the token."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = ClassAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor, x_cls: torch.Tensor) -> torch.Tensor:
        u = torch.cat((x_cls, x), dim=1)
        x_cls = x_cls + self.gamma_1 * self.attn(self.norm1(u))
        return x_cls + self.gamma_2 * self.mlp(self.norm2(x_cls))


class Cait(PortedBackbone):
    """CaiT with the DeiT repository's / timm's names."""

    ignored_keys = (r"^head\.",)

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 384,
        depth: int = 24,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        init_values: float = 1e-5,
        depth_token_only: int = 2,
        norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = int(patch_size)
        if self.img_size[0] % self.patch_size or self.img_size[1] % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], embed_dim))
        # CaiT uses the same stochastic-depth rate in every block.
        self.blocks = nn.ModuleList(
            LayerScaleBlock(embed_dim, num_heads, mlp_ratio, init_values, drop_path_rate, norm_eps)
            for _ in range(depth)
        )
        self.blocks_token_only = nn.ModuleList(
            ClassAttentionBlock(embed_dim, num_heads, mlp_ratio, init_values, norm_eps) for _ in range(depth_token_only)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.out_channels_list = (embed_dim,)
        self.stride = self.patch_size
        self.num_lr_layers = depth + depth_token_only + 1
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def feature_strides(self) -> tuple[int, ...]:
        return (self.patch_size,)

    def _run_blocks(self, x: torch.Tensor, take: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.patch_embed(x)
        b, h, w, c = x.shape
        pos = self.pos_embed
        if (h, w) != self.grid_size:
            pos = resample_abs_pos_embed(pos, (h, w), self.grid_size)
        tokens = x.reshape(b, h * w, c) + pos
        wanted = set(take)
        maps = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in wanted:
                maps.append(tokens_to_map(tokens, (h, w)))
        return tokens, maps

    def intermediate_maps(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Patch-token maps after each self-attention block in `indices` (no norm), in block order."""
        resolved = resolve_block_indices(indices, len(self.blocks))
        return self._run_blocks(x, resolved)[1]

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[the last self-attention block's patch tokens as a [B, C, H/p, W/p] map]."""
        return self.intermediate_maps(x, [-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[class token, patch tokens] [B, 1 + N, C] after class attention and the final norm."""
        tokens = self._run_blocks(x, ())[0]
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        for block in self.blocks_token_only:
            cls = block(tokens, cls)
        return self.norm(torch.cat((cls, tokens), dim=1))

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-logits embedding [B, C]: the normalised class token."""
        return self.forward_features(x)[:, 0]

    def convert_state_dict(self, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        pos = state.get("pos_embed")
        if pos is not None:
            old_grid = square_grid(pos.shape[1])
            if old_grid != self.grid_size:
                state["pos_embed"] = resample_abs_pos_embed(pos, self.grid_size, old_grid)
                report.resized.append(f"pos_embed {old_grid} -> {self.grid_size}")
        return state

    def lr_layer_id(self, name: str) -> int:
        if name.startswith(("patch_embed.", "pos_embed", "cls_token")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        if name.startswith("blocks_token_only."):
            return len(self.blocks) + int(name.split(".")[1]) + 1
        return self.num_lr_layers

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}
