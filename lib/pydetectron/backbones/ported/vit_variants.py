"""Registered ViT variants: `<family>_<size><patch>[_<tag>]`.

Sizes: ti (192 wide), s (384), m (512), b (768), l (1024), h (1280), so400m (1152, SigLIP).
Families and the published checkpoints (timm names in brackets) they take:
- `vit_*`: original ViT and AugReg [vit_tiny_patch16_224 ...]; `vit_*_augreg` are the same
  models under AugReg's name;
- `deit_*`, `deit_*_distilled` (distillation token) [deit_*_patch16_224];
- `deit3_*`: LayerScale, position embedding without the class token [deit3_*_patch16_224];
- `siglip_*`: no class token, MAP attention pooling [vit_*_patch16_siglip_224 ...];
- `vit_*_reg4_gap` (4 registers, average pooling) [vit_*_patch16_reg4_gap_256] and
  `vit_*14_reg4_dinov2` (4 registers, LayerScale) [vit_*_patch14_reg4_dinov2].
Every constructor takes `img_size` (position embeddings are resampled to it on load) and
the ViTDet switches `window_size`, `global_blocks`, `rel_pos`.
"""

from __future__ import annotations

from .factory import register_variants
from .vit import VisionTransformer

TI = dict(embed_dim=192, depth=12, num_heads=3)
S = dict(embed_dim=384, depth=12, num_heads=6)
M = dict(embed_dim=512, depth=12, num_heads=8)
B = dict(embed_dim=768, depth=12, num_heads=12)
L = dict(embed_dim=1024, depth=24, num_heads=16)
H = dict(embed_dim=1280, depth=32, num_heads=16)
SO400M = dict(embed_dim=1152, depth=27, num_heads=16, mlp_ratio=3.7362)

VIT = {
    "vit_ti16": dict(TI, patch_size=16),
    "vit_s16": dict(S, patch_size=16),
    "vit_s32": dict(S, patch_size=32),
    "vit_b16": dict(B, patch_size=16),
    "vit_b32": dict(B, patch_size=32),
    "vit_b8": dict(B, patch_size=8),
    "vit_l16": dict(L, patch_size=16),
    "vit_l32": dict(L, patch_size=32),
    "vit_l14": dict(L, patch_size=14),
    "vit_h14": dict(H, patch_size=14),
}
AUGREG_SIZES = ("vit_ti16", "vit_s16", "vit_s32", "vit_b16", "vit_b32", "vit_b8", "vit_l16")
AUGREG = {f"{name}_augreg": VIT[name] for name in AUGREG_SIZES}

DEIT = {
    "deit_ti16": dict(TI, patch_size=16),
    "deit_s16": dict(S, patch_size=16),
    "deit_b16": dict(B, patch_size=16),
}
DEIT_DISTILLED = {f"{name}_distilled": dict(cfg, dist_token=True) for name, cfg in DEIT.items()}

DEIT3_SETTINGS = dict(no_embed_class=True, init_values=1e-6)
DEIT3 = {
    "deit3_s16": dict(S, patch_size=16, **DEIT3_SETTINGS),
    "deit3_m16": dict(M, patch_size=16, **DEIT3_SETTINGS),
    "deit3_b16": dict(B, patch_size=16, **DEIT3_SETTINGS),
    "deit3_l16": dict(L, patch_size=16, **DEIT3_SETTINGS),
    "deit3_h14": dict(H, patch_size=14, **DEIT3_SETTINGS),
}

SIGLIP_SETTINGS = dict(class_token=False, global_pool="map")
SIGLIP = {
    "siglip_b16": dict(B, patch_size=16, img_size=224, **SIGLIP_SETTINGS),
    "siglip_b32": dict(B, patch_size=32, img_size=256, act_layer="gelu_tanh", **SIGLIP_SETTINGS),
    "siglip_l16": dict(L, patch_size=16, img_size=256, **SIGLIP_SETTINGS),
    "siglip_so400m14": dict(SO400M, patch_size=14, img_size=224, **SIGLIP_SETTINGS),
    "siglip_so400m16": dict(SO400M, patch_size=16, img_size=256, act_layer="gelu_tanh", **SIGLIP_SETTINGS),
}

REG_GAP = dict(class_token=False, no_embed_class=True, reg_tokens=4, global_pool="avg", img_size=256)
DINOV2_REG = dict(init_values=1e-5, reg_tokens=4, no_embed_class=True, img_size=518)
REGISTERS = {
    "vit_m16_reg4_gap": dict(M, patch_size=16, init_values=1e-5, **REG_GAP),
    "vit_b16_reg4_gap": dict(B, patch_size=16, **REG_GAP),
    "vit_s14_reg4_dinov2": dict(S, patch_size=14, **DINOV2_REG),
    "vit_b14_reg4_dinov2": dict(B, patch_size=14, **DINOV2_REG),
    "vit_l14_reg4_dinov2": dict(L, patch_size=14, **DINOV2_REG),
}

register_variants(VisionTransformer, VIT, "ViT")
register_variants(VisionTransformer, AUGREG, "ViT (AugReg weights)")
register_variants(VisionTransformer, DEIT, "DeiT")
register_variants(VisionTransformer, DEIT_DISTILLED, "DeiT with distillation token")
register_variants(VisionTransformer, DEIT3, "DeiT-3")
register_variants(VisionTransformer, SIGLIP, "SigLIP")
register_variants(VisionTransformer, REGISTERS, "ViT with register tokens")
