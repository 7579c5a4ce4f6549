"""Registered Mixer, CaiT, Swin and ConvNeXt variants (timm / original names in brackets).

- `mixer_{s,b,l}{16,32}` [mixer_b16_224 ...]: fixed input size `img_size` (224).
- `cait_{xxs24,xxs36,xs24,s24,s36,m36,m48}` [cait_s24_224 ...]: `img_size` defaults to the
  smallest published resolution (224, or 384 / 448 where only that exists).
- `swin_{t,s,b,l}` (window 7, 224) and `swin_{b,l}_w12` (window 12, 384)
  [swin_tiny_patch4_window7_224 ...].
- `convnext_{t,s,b,l,xl}` [convnext_tiny ...] and `convnextv2_{a,f,p,n,t,b,l,h}`
  (atto ... huge) [convnextv2_atto ...].
Swin and ConvNeXt take `out_norms=True` (detection: a LayerNorm on each of the 4 maps);
Swin also `always_partition=True` (the detection windowing).
"""

from __future__ import annotations

from .cait import Cait
from .convnext import ConvNeXt
from .factory import register_variants
from .mixer import MlpMixer
from .swin import SwinTransformer

MIXER = {
    "mixer_s16": dict(patch_size=16, num_blocks=8, embed_dim=512),
    "mixer_s32": dict(patch_size=32, num_blocks=8, embed_dim=512),
    "mixer_b16": dict(patch_size=16, num_blocks=12, embed_dim=768),
    "mixer_b32": dict(patch_size=32, num_blocks=12, embed_dim=768),
    "mixer_l16": dict(patch_size=16, num_blocks=24, embed_dim=1024),
    "mixer_l32": dict(patch_size=32, num_blocks=24, embed_dim=1024),
}

CAIT = {
    "cait_xxs24": dict(embed_dim=192, depth=24, num_heads=4, init_values=1e-5, img_size=224),
    "cait_xxs36": dict(embed_dim=192, depth=36, num_heads=4, init_values=1e-5, img_size=224),
    "cait_xs24": dict(embed_dim=288, depth=24, num_heads=6, init_values=1e-5, img_size=384),
    "cait_s24": dict(embed_dim=384, depth=24, num_heads=8, init_values=1e-5, img_size=224),
    "cait_s36": dict(embed_dim=384, depth=36, num_heads=8, init_values=1e-6, img_size=384),
    "cait_m36": dict(embed_dim=768, depth=36, num_heads=16, init_values=1e-6, img_size=384),
    "cait_m48": dict(embed_dim=768, depth=48, num_heads=16, init_values=1e-6, img_size=448),
}

SWIN_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
SWIN_S = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))
SWIN_B = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
SWIN_L = dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48))
SWIN = {
    "swin_t": dict(SWIN_T, window_size=7, img_size=224),
    "swin_s": dict(SWIN_S, window_size=7, img_size=224),
    "swin_b": dict(SWIN_B, window_size=7, img_size=224),
    "swin_l": dict(SWIN_L, window_size=7, img_size=224),
    "swin_b_w12": dict(SWIN_B, window_size=12, img_size=384),
    "swin_l_w12": dict(SWIN_L, window_size=12, img_size=384),
}

CONVNEXT = {
    "convnext_t": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "convnext_s": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "convnext_b": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "convnext_l": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "convnext_xl": dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
}

V2 = dict(use_grn=True, ls_init_value=None)
CONVNEXT_V2 = {
    "convnextv2_a": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), **V2),
    "convnextv2_f": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384), **V2),
    "convnextv2_p": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512), **V2),
    "convnextv2_n": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640), **V2),
    "convnextv2_t": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), **V2),
    "convnextv2_b": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), **V2),
    "convnextv2_l": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536), **V2),
    "convnextv2_h": dict(depths=(3, 3, 27, 3), dims=(352, 704, 1408, 2816), **V2),
}

register_variants(MlpMixer, MIXER, "MLP-Mixer")
register_variants(Cait, CAIT, "CaiT")
register_variants(SwinTransformer, SWIN, "Swin Transformer")
register_variants(ConvNeXt, CONVNEXT, "ConvNeXt")
register_variants(ConvNeXt, CONVNEXT_V2, "ConvNeXt-V2")
