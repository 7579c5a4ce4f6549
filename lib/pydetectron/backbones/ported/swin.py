"""Swin Transformer (Liu et al. 2021): shifted-window attention with relative position bias,
patch merging between stages; maps at strides 4, 8, 16, 32.

Names are timm's (patch merging at the start of stages 1-3, `layers.i.downsample`); the
Swin repository's layout (merging at the end of stages 0-2, `head.weight`), its detection
checkpoints (`backbone.` prefix, output norms `norm0..3`) and their stored buffers
(`relative_position_index`, `attn_mask`) are converted on load. Bias tables of another
window size are resized bicubically as the Swin repository's fine-tuning loader does.

Windows: built for `img_size`, a stage whose resolution is not larger than the window
uses one window of that resolution and no shift (the classification models). With
`always_partition=True` every stage keeps `window_size` and its shift whatever the input
(the Swin detection code). The map is padded at the bottom/right to whole windows before
the cyclic shift, and the shifted-window mask is built for the padded size (as the Swin
detection code), so any input size works.

Detection form: `out_norms=True` adds a LayerNorm on each stage output (the Swin detection
backbone's `norm0..3`) and drops the classification norm.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import LoadReport, PortedBackbone, strip_prefix
from .layers import DropPath, Mlp, PatchEmbed, drop_path_rates, to_2tuple
from .pos_embed import relative_position_index, resize_rel_pos_bias_table
from .windows import window_partition, window_unpartition

MASKED = -100.0  # the Swin repository's additive mask value


class WindowAttention(nn.Module):
    """Multi-head attention within a window plus a learned bias per relative offset and head."""

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int], qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window = window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _position_bias(self) -> torch.Tensor:
        n = self.window[0] * self.window[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B*nW, N, C]; mask [nW, N, N] (0 / MASKED) for shifted windows."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self._position_bias().to(q.dtype)
        if mask is not None:
            windows = mask.shape[0]
            mask = mask.view(1, windows, 1, n, n).expand(b // windows, -1, self.num_heads, -1, -1)
            bias = bias + mask.reshape(-1, self.num_heads, n, n).to(q.dtype)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


def shifted_window_mask(
    size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """[nW, N, N] mask keeping attention inside the regions a cyclic shift brought together."""
    labels = torch.zeros((1, size[0], size[1], 1), device=device)
    region = 0
    for rows in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
        for cols in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
            labels[:, rows[0] : rows[1], cols[0] : cols[1], :] = region
            region += 1
    windows = window_partition(labels, window)[0].reshape(-1, window[0] * window[1])
    different = windows.unsqueeze(1) != windows.unsqueeze(2)
    return torch.zeros(different.shape, device=device).masked_fill(different, MASKED)


class SwinBlock(nn.Module):
    """(Shifted-)window attention block on an NHWC map."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: tuple[int, int],
        shift: tuple[int, int],
        mlp_ratio: float,
        drop_path: float,
        eps: float,
    ):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention(dim, num_heads, window)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)
        self._mask_cache: tuple[tuple, torch.Tensor] | None = None  # the last (size, device) and its mask

    def _mask(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        key = (size, str(device))
        if self._mask_cache is None or self._mask_cache[0] != key:
            self._mask_cache = (key, shifted_window_mask(size, self.window, self.shift, device))
        return self._mask_cache[1]

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        pad_h, pad_w = (-h) % self.window[0], (-w) % self.window[1]
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        padded = (h + pad_h, w + pad_w)
        shifted = any(self.shift)
        mask = None
        if shifted:
            x = torch.roll(x, shifts=(-self.shift[0], -self.shift[1]), dims=(1, 2))
            mask = self._mask(padded, x.device)
        windows, _ = window_partition(x, self.window)
        windows = self.attn(windows.flatten(1, 2), mask).view(-1, self.window[0], self.window[1], c)
        x = window_unpartition(windows, self.window, padded, padded)
        if shifted:
            x = torch.roll(x, shifts=self.shift, dims=(1, 2))
        return x[:, :h, :w] if (pad_h or pad_w) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self._attention(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: concat (4C), LayerNorm, linear to `out_dim` (odd sides padded)."""

    def __init__(self, dim: int, out_dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        h, w = x.shape[1], x.shape[2]
        # channel order (x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]) as the Swin repository
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Optional patch merging, then `depth` blocks alternating regular and shifted windows."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        depth: int,
        downsample: bool,
        num_heads: int,
        window: tuple[int, int],
        resolution: tuple[int, int],
        always_partition: bool,
        mlp_ratio: float,
        drop_paths: Sequence[float],
        eps: float,
    ):
        super().__init__()
        self.downsample = PatchMerging(dim, out_dim, eps) if downsample else nn.Identity()
        half = (window[0] // 2, window[1] // 2)
        if not always_partition:  # a window never larger than the stage resolution; then no shift
            window = tuple(min(r, w) for r, w in zip(resolution, window))
            half = tuple(0 if r <= w else s for r, w, s in zip(resolution, window, half))
        self.blocks = nn.ModuleList(
            SwinBlock(out_dim, num_heads, window, (0, 0) if i % 2 == 0 else half, mlp_ratio, drop_paths[i], eps)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x


class SwinTransformer(PortedBackbone):
    """Swin-T/S/B/L with timm's names; `get_feature_maps` -> 4 maps at strides 4, 8, 16, 32."""

    ignored_keys = (r"^head\.", r"\.relative_position_index$", r"\.attn_mask$")

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int | tuple[int, int] = 7,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-5,
        drop_path_rate: float = 0.0,
        always_partition: bool = False,
        out_norms: bool = False,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} differ in length")
        self.img_size = to_2tuple(img_size)
        self.window_size = to_2tuple(window_size)
        self.depths = tuple(int(d) for d in depths)
        dims = [embed_dim * 2**i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, norm_eps=norm_eps)
        resolution = (-(-self.img_size[0] // patch_size), -(-self.img_size[1] // patch_size))
        rates = drop_path_rates(drop_path_rate, sum(depths))
        self.layers = nn.ModuleList()
        start = 0
        for i, depth in enumerate(self.depths):
            if i > 0:
                resolution = ((resolution[0] + 1) // 2, (resolution[1] + 1) // 2)
            self.layers.append(
                SwinStage(
                    dims[max(i - 1, 0)],
                    dims[i],
                    depth,
                    i > 0,
                    num_heads[i],
                    self.window_size,
                    resolution,
                    always_partition,
                    mlp_ratio,
                    rates[start : start + depth],
                    norm_eps,
                )
            )
            start += depth
        if out_norms:
            self.out_norms = nn.ModuleList(nn.LayerNorm(d, eps=norm_eps) for d in dims)
            self.norm = None
        else:
            self.out_norms = None
            self.norm = nn.LayerNorm(dims[-1], eps=norm_eps)
        self.out_channels_list = tuple(dims)
        self.stride = patch_size * 2 ** (len(depths) - 1)
        self.num_lr_layers = sum(self.depths) + 1
        self.optional_keys = (r"^out_norms\.",)
        if out_norms:
            self.ignored_keys = SwinTransformer.ignored_keys + (r"^norm\.",)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def feature_strides(self) -> tuple[int, ...]:
        first = self.stride // 2 ** (len(self.depths) - 1)
        return tuple(first * 2**i for i in range(len(self.depths)))

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        outputs = []
        for stage in self.layers:
            x = stage(x)
            outputs.append(x)
        return outputs

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs [B, C_i, H/s, W/s] at strides 4, 8, 16, 32 (each LayerNorm-ed with `out_norms`)."""
        maps = self._stages(x)
        if self.out_norms is not None:
            maps = [norm(m) for norm, m in zip(self.out_norms, maps)]
        return [m.permute(0, 3, 1, 2).contiguous() for m in maps]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage [B, H/32, W/32, C] after the final norm (timm's NHWC `forward_features`)."""
        if self.norm is None:
            raise RuntimeError("a Swin built with out_norms=True (detection) has no classification norm")
        return self.norm(self._stages(x)[-1])

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-logits embedding [B, C]: spatial mean of `forward_features`."""
        return self.forward_features(x).mean(dim=(1, 2))

    def convert_state_dict(self, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
        state = strip_prefix(state, "backbone.", report)  # detection checkpoints
        repository_layout = "layers.0.downsample.reduction.weight" in state
        converted = {}
        for key, value in state.items():
            if repository_layout and key.startswith("layers.") and ".downsample." in key:
                stage = int(key.split(".")[1])
                key = key.replace(f"layers.{stage}.downsample.", f"layers.{stage + 1}.downsample.", 1)
            if key.startswith("norm") and key[4:5].isdigit():  # detection output norms norm0..norm3
                key = f"out_norms.{key[4]}.{key.split('.', 1)[1]}"
            converted[key] = value
        own = dict(self.named_modules())
        for key, value in list(converted.items()):
            if key.endswith(".relative_position_bias_table"):
                module = own.get(key[: -len(".relative_position_bias_table")])
                if isinstance(module, WindowAttention):
                    table = resize_rel_pos_bias_table(value, module.window)
                    if table is not value:
                        converted[key] = table
                        report.resized.append(key)
        return converted

    def lr_layer_id(self, name: str) -> int:
        if name.startswith("patch_embed."):
            return 0
        if name.startswith("layers."):
            parts = name.split(".")
            stage = int(parts[1])
            before = sum(self.depths[:stage])
            if parts[2] == "downsample":  # belongs with the previous stage's last block
                return before
            return before + int(parts[3]) + 1
        return self.num_lr_layers

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.endswith("relative_position_bias_table")}
