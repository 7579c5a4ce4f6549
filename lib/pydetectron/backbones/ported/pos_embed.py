"""Resizing of learned position encodings: absolute grids, Swin bias tables, ViTDet relative tables.

Conventions (each the one its family's reference code uses):
- absolute embeddings (ViT / DeiT / SigLIP / CaiT): bicubic with antialias on the patch grid,
  prefix (class / distillation / register) entries kept as they are (timm's
  `resample_abs_pos_embed`);
- Swin relative-position-bias tables: bicubic over the (2W-1) x (2W-1) table per head
  (the Swin repository's fine-tuning loader);
- ViTDet / MViTv2 decomposed relative embeddings: linear along the one axis
  (detectron2's `get_rel_pos`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def square_grid(num_tokens: int, what: str = "position embedding") -> tuple[int, int]:
    """The (side, side) grid that `num_tokens` fills; a ValueError if it is not a square."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{what}: {num_tokens} entries are not a square grid; cannot infer its size")
    return side, side


def resample_abs_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
    antialias: bool = True,
) -> torch.Tensor:
    """[1, P + h*w, C] -> [1, P + H*W, C]: bicubic on the grid part, the P prefix entries kept."""
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"position embedding: expected [1, N, C], got {tuple(pos_embed.shape)}")
    prefix, grid_part = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    if old_grid is None:
        old_grid = square_grid(grid_part.shape[1])
    if grid_part.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"position embedding: {grid_part.shape[1]} grid entries, expected {old_grid}")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    dim = grid_part.shape[-1]
    dtype = grid_part.dtype
    grid = grid_part.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", antialias=antialias, align_corners=False)
    grid_part = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(dtype)
    return torch.cat([prefix, grid_part], dim=1)


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """Swin's [Wh*Ww, Wh*Ww] index of each (query, key) offset into the bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window[0]), torch.arange(window[1]), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    relative[:, :, 0] += window[0] - 1
    relative[:, :, 1] += window[1] - 1
    relative[:, :, 0] *= 2 * window[1] - 1
    return relative.sum(-1)


def resize_rel_pos_bias_table(table: torch.Tensor, new_window: tuple[int, int]) -> torch.Tensor:
    """A Swin bias table [(2w-1)^2, heads] of a square window -> [(2Wh-1)(2Ww-1), heads] (bicubic)."""
    src = square_grid(table.shape[0], "relative position bias table")
    dst = (2 * new_window[0] - 1, 2 * new_window[1] - 1)
    if src == dst:
        return table
    heads = table.shape[1]
    grid = table.float().permute(1, 0).reshape(1, heads, src[0], src[1])
    grid = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    return grid.reshape(heads, dst[0] * dst[1]).permute(1, 0).contiguous().to(table.dtype)


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """A decomposed relative embedding [L, C] -> [length, C], linear along L (ViTDet)."""
    if rel_pos.shape[0] == length:
        return rel_pos
    dtype = rel_pos.dtype
    resized = F.interpolate(rel_pos.float().t().unsqueeze(0), size=length, mode="linear")
    return resized.squeeze(0).t().contiguous().to(dtype)


def rel_pos_lookup(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """[size, size, C]: the embedding of offset (q - k) for query q and key k along one axis."""
    table = resize_rel_pos(rel_pos, 2 * size - 1)
    offsets = torch.arange(size, device=rel_pos.device)
    return table[offsets[:, None] - offsets[None, :] + (size - 1)]


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """MViTv2 / ViTDet attention bias [B, heads, N, N] from (unscaled) queries q [B, heads, N, C]."""
    h, w = grid
    b, heads, n, c = q.shape
    if n != h * w:
        raise ValueError(f"relative position bias: {n} queries do not fill a {h}x{w} grid")
    r_h = rel_pos_lookup(h, rel_pos_h)  # [h, h, C]
    r_w = rel_pos_lookup(w, rel_pos_w)  # [w, w, C]
    q_grid = q.reshape(b, heads, h, w, c)
    bias_h = torch.einsum("bnhwc,hkc->bnhwk", q_grid, r_h.to(q.dtype))
    bias_w = torch.einsum("bnhwc,wkc->bnhwk", q_grid, r_w.to(q.dtype))
    bias = bias_h[:, :, :, :, :, None] + bias_w[:, :, :, :, None, :]
    return bias.reshape(b, heads, n, n)
