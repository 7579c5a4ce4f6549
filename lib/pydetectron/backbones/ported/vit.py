"""Vision Transformer (ViT / AugReg, DeiT, DeiT-3, SigLIP, register-token ViTs) and its ViTDet form.

One class covers the published variants through constructor switches: a class token or
none, a DeiT distillation token, register tokens, position embeddings that include the
prefix tokens or not (`no_embed_class`, DeiT-3 / big_vision), LayerScale (`init_values`),
and the pooling each family uses (`token`, `avg` with `fc_norm`, `map` attention pooling).

Detection form (ViTDet, Li et al. 2022): `window_size > 0` runs every block not listed in
`global_blocks` as non-overlapping window attention (the map padded to whole windows), and
`rel_pos=True` adds MViTv2's decomposed relative position bias. Either switch makes a
patch-tokens-only model: no class / register tokens, no final norm or pooling head (their
checkpoint entries are ignored on load, as are the prefix entries of the position
embedding), exactly as ViTDet's backbone.

Feature maps: `get_feature_maps(x)` returns ONE map, the last block's patch tokens
(before the final norm, as ViTDet uses them) at stride `patch_size` (16: no stride
2/4/8/32 maps; `SimpleFeaturePyramid` builds strides 4-32 from it). Inputs of any size are
accepted: the image is zero-padded at the bottom/right to whole patches and the absolute
position embedding is resampled (bicubic, antialiased, as timm) to the patch grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import LoadReport, PortedBackbone, strip_prefix
from .layers import (
    DropPath,
    LayerScale,
    Mlp,
    PatchEmbed,
    drop_path_rates,
    resolve_block_indices,
    to_2tuple,
    tokens_to_map,
)
from .pos_embed import decomposed_rel_pos_bias, resample_abs_pos_embed, resize_rel_pos, square_grid
from .windows import window_partition, window_unpartition

GLOBAL_POOLS = ("token", "avg", "map")


class Attention(nn.Module):
    """Multi-head self-attention; with `rel_pos_size`, ViTDet's decomposed relative position bias."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, rel_pos_size: tuple[int, int] | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if rel_pos_size is not None:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_pos_size[0] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_pos_size[1] - 1, self.head_dim))
        else:
            self.rel_pos_h = self.rel_pos_w = None

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x [B, N, C]; `grid` (h, w) of the N tokens, needed with relative positions."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        bias = None
        if self.rel_pos_h is not None:
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, grid)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block; `window_size > 0` attends within windows of the token grid."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        init_values: float | None = None,
        act_layer: str = "gelu",
        norm_eps: float = 1e-6,
        drop_path: float = 0.0,
        window_size: int = 0,
        rel_pos_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.window_size = int(window_size)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, rel_pos_size=rel_pos_size)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def _attention(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if not self.window_size:
            return self.attn(x, grid)
        b, _, c = x.shape
        windows, padded = window_partition(x.reshape(b, grid[0], grid[1], c), (self.window_size, self.window_size))
        windows = self.attn(windows.flatten(1, 2), (self.window_size, self.window_size))
        windows = windows.reshape(-1, self.window_size, self.window_size, c)
        return window_unpartition(windows, (self.window_size, self.window_size), padded, grid).reshape(b, -1, c)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self._attention(self.norm1(x), grid)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class AttentionPoolLatent(nn.Module):
    """Multihead attention pooling (MAP, SigLIP): a learned query attends over the tokens, then an MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, act_layer: str = "gelu", eps: float = 1e-6):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        nn.init.trunc_normal_(self.latent, std=dim**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, c)
        x = self.proj(x)
        x = x + self.mlp(self.norm(x))
        return x[:, 0]


class VisionTransformer(PortedBackbone):
    """ViT with timm's parameter names; see the module docstring for the variants and the ViTDet form.

    Weights: timm's layout (AugReg, DeiT, DeiT-3, SigLIP, MAE and DINOv2 in timm names),
    the DeiT / DeiT-3 repositories (`gamma_1`/`gamma_2`), DINOv2 with registers
    (`register_tokens`), and OpenCLIP's timm towers (`visual.trunk.` prefix). The position
    embedding is resampled to `img_size` on load; ViTDet relative tables are resized
    linearly.
    """

    ignored_keys = (r"^head\.", r"^head_dist\.", r"^mask_token$")

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        class_token: bool = True,
        dist_token: bool = False,
        reg_tokens: int = 0,
        no_embed_class: bool = False,
        init_values: float | None = None,
        global_pool: str = "token",
        fc_norm: bool | None = None,
        act_layer: str = "gelu",
        norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
        window_size: int = 0,
        global_blocks: Sequence[int] = (),
        rel_pos: bool = False,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = int(patch_size)
        if self.img_size[0] % self.patch_size or self.img_size[1] % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        self.embed_dim = embed_dim
        self.window_size = int(window_size)
        self.global_blocks = tuple(int(i) for i in global_blocks)
        if any(not 0 <= i < depth for i in self.global_blocks):
            raise ValueError(f"global_blocks {self.global_blocks} must be block indices in [0, {depth})")
        # ViTDet: windows or relative positions -> patch tokens only, no classification head.
        self.detection = self.window_size > 0 or rel_pos
        if self.detection:
            class_token, dist_token, reg_tokens = False, False, 0
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool {global_pool!r}: expected one of {GLOBAL_POOLS}")
        if not self.detection and global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        if dist_token and not class_token:
            raise ValueError("a distillation token needs the class token")
        self.global_pool = global_pool
        self.no_embed_class = no_embed_class
        self.num_prefix_tokens = int(class_token) + int(dist_token) + int(reg_tokens)
        self.num_pos_prefix = 0 if no_embed_class else self.num_prefix_tokens

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if dist_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, embed_dim)) if reg_tokens else None
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_pos_prefix + num_patches, embed_dim))
        rates = drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList()
        for i in range(depth):
            windowed = self.window_size > 0 and i not in self.global_blocks
            rel_size = ((self.window_size,) * 2 if windowed else self.grid_size) if rel_pos else None
            self.blocks.append(
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    init_values=init_values,
                    act_layer=act_layer,
                    norm_eps=norm_eps,
                    drop_path=rates[i],
                    window_size=self.window_size if windowed else 0,
                    rel_pos_size=rel_size,
                )
            )
        use_fc_norm = (global_pool == "avg") if fc_norm is None else fc_norm
        has_head = not self.detection
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if has_head and not use_fc_norm else nn.Identity()
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if has_head and use_fc_norm else nn.Identity()
        self.attn_pool = (
            AttentionPoolLatent(embed_dim, num_heads, mlp_ratio, act_layer, norm_eps)
            if has_head and global_pool == "map"
            else None
        )
        self.out_channels_list = (embed_dim,)
        self.stride = self.patch_size
        self.num_lr_layers = depth + 1
        if self.detection:
            self.optional_keys = (r"\.attn\.rel_pos_[hw]$",)
            self.ignored_keys = VisionTransformer.ignored_keys + (
                r"^(cls_token|dist_token|reg_token|register_tokens)$",
                r"^(norm|fc_norm|attn_pool)\.",
            )
        self._init_weights()

    @property
    def feature_strides(self) -> tuple[int, ...]:
        return (self.patch_size,)

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for token in (self.cls_token, self.dist_token, self.reg_token):
            if token is not None:
                nn.init.normal_(token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # --- forward -------------------------------------------------------------------------

    def _position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        if grid == self.grid_size:
            return self.pos_embed
        return resample_abs_pos_embed(self.pos_embed, grid, self.grid_size, self.num_pos_prefix)

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.patch_embed(x)
        b, h, w, c = x.shape
        x = x.reshape(b, h * w, c)
        pos = self._position_embedding((h, w))
        prefix = [t.expand(b, -1, -1) for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]
        if self.no_embed_class:
            x = torch.cat(prefix + [x + pos], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos
        return x, (h, w)

    def _run_blocks(self, x: torch.Tensor, take: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Final tokens (before the norm) and the patch-token maps after the blocks in `take`."""
        tokens, grid = self._embed(x)
        wanted = set(take)
        maps = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, grid)
            if i in wanted:
                maps.append(tokens_to_map(tokens[:, self.num_prefix_tokens :], grid))
        return tokens, maps

    def intermediate_maps(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Patch-token maps [B, C, H/p, W/p] after each block in `indices` (no norm), in block order."""
        return self._run_blocks(x, resolve_block_indices(indices, len(self.blocks)))[1]

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[the last block's patch tokens as a [B, C, H/p, W/p] map] (stride `patch_size`)."""
        return self.intermediate_maps(x, [-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens [B, prefix + patches, C] after the final norm (timm's `forward_features`)."""
        return self.norm(self._run_blocks(x, ())[0])

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-logits image embedding [B, C] of the classification model."""
        return self.pool(self.forward_features(x))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """`forward_features` tokens -> the pre-logits embedding (timm's `forward_head(pre_logits=True)`)."""
        if self.detection:
            raise RuntimeError("a ViTDet-form VisionTransformer (windows / relative positions) has no pooling head")
        if self.attn_pool is not None:
            return self.attn_pool(tokens[:, self.num_prefix_tokens :])
        if self.dist_token is not None:
            return (tokens[:, 0] + tokens[:, 1]) / 2
        if self.global_pool == "token":
            return tokens[:, 0]
        return self.fc_norm(tokens[:, self.num_prefix_tokens :].mean(dim=1))

    # --- weights -------------------------------------------------------------------------

    def convert_state_dict(self, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        state = strip_prefix(state, "visual.trunk.", report)  # OpenCLIP timm towers
        state = {_deit_layer_scale_name(k): v for k, v in state.items()}
        if "register_tokens" in state and "reg_token" not in state:  # DINOv2 repository layout
            state = _convert_dinov2_registers(state)
        if "pos_embed" in state:
            state["pos_embed"] = self._fit_pos_embed(state["pos_embed"], state, report)
        for name, param in self.named_parameters():
            if name.endswith((".rel_pos_h", ".rel_pos_w")) and name in state and state[name].shape != param.shape:
                state[name] = resize_rel_pos(state[name], param.shape[0])
                report.resized.append(name)
        return state

    def _fit_pos_embed(self, pos: torch.Tensor, state: dict[str, torch.Tensor], report: LoadReport) -> torch.Tensor:
        """A checkpoint's position embedding for this model's prefix tokens and patch grid."""
        if pos.ndim == 4:  # [1, H, W, C] (SAM-style)
            pos = pos.flatten(1, 2)
        ckpt_tokens = sum(
            state[k].shape[1] for k in ("cls_token", "dist_token", "reg_token") if k in state and state[k].ndim == 3
        )
        ckpt_prefix = next((p for p in (ckpt_tokens, 0) if square_grid_or_none(pos.shape[1] - p)), None)
        if ckpt_prefix is None:
            raise ValueError(f"pos_embed {tuple(pos.shape)}: cannot tell its prefix entries from its patch grid")
        if ckpt_prefix != self.num_pos_prefix:
            if not self.detection:
                raise ValueError(
                    f"pos_embed has {ckpt_prefix} prefix entries, the model {self.num_pos_prefix} "
                    "(is no_embed_class set as the checkpoint was trained?)"
                )
            pos = pos[:, ckpt_prefix:]  # ViTDet keeps patch tokens only
            report.ignored.append(f"pos_embed[:, :{ckpt_prefix}] (prefix-token entries)")
        old_grid = square_grid(pos.shape[1] - self.num_pos_prefix)
        if old_grid != self.grid_size:
            pos = resample_abs_pos_embed(pos, self.grid_size, old_grid, self.num_pos_prefix)
            report.resized.append(f"pos_embed {old_grid} -> {self.grid_size}")
        return pos

    # --- optimisation --------------------------------------------------------------------

    def lr_layer_id(self, name: str) -> int:
        if name.startswith(("patch_embed.", "pos_embed", "cls_token", "dist_token", "reg_token")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.num_lr_layers

    def no_weight_decay(self) -> set[str]:
        names = {"pos_embed", "cls_token", "dist_token", "reg_token", "attn_pool.latent"}
        names |= {n for n, _ in self.named_parameters() if n.endswith((".rel_pos_h", ".rel_pos_w"))}
        return {n for n, _ in self.named_parameters() if n in names}


def square_grid_or_none(num_tokens: int) -> bool:
    """Whether `num_tokens` > 0 fills a square grid."""
    if num_tokens <= 0:
        return False
    try:
        square_grid(num_tokens)
    except ValueError:
        return False
    return True


def _deit_layer_scale_name(name: str) -> str:
    """DeiT-3 repository names `blocks.i.gamma_1` -> `blocks.i.ls1.gamma`."""
    if name.startswith("blocks.") and (name.endswith(".gamma_1") or name.endswith(".gamma_2")):
        return f"{name[: -len('gamma_1')]}ls{name[-1]}.gamma"
    return name


def _convert_dinov2_registers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DINOv2-with-registers repository layout -> timm's (class token without a position entry)."""
    state = dict(state)
    pos = state.pop("pos_embed")
    state["reg_token"] = state.pop("register_tokens")
    state["cls_token"] = state["cls_token"] + pos[:, :1]
    state["pos_embed"] = pos[:, 1:]
    return state
