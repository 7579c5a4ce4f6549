"""ViT / AugReg / DeiT / DeiT-3 / SigLIP / register-token ViTs against timm, and the ViTDet form
(windowed attention, relative positions) against timm's SAM image encoder, which is built the
same way (ViTDet's blocks)."""

from functools import partial

import pytest
import torch
from ported_parity_support import (
    assert_all_match,
    assert_matches,
    num_params,
    randomize_,
    timm,
    timm_pooled,
    timm_reference,
)
from torch import nn

from pydetectron import backbones
from pydetectron.backbones.ported import VisionTransformer

vit_module = pytest.importorskip("timm.models.vision_transformer")
sam_module = pytest.importorskip("timm.models.vision_transformer_sam")

# ours, timm's, native size
FAMILIES = [
    ("vit_ti16", "vit_tiny_patch16_224", 224),
    ("deit_ti16_distilled", "deit_tiny_distilled_patch16_224", 224),
    ("deit3_s16", "deit3_small_patch16_224", 224),
    ("siglip_b16", "vit_base_patch16_siglip_224", 224),
    ("vit_m16_reg4_gap", "vit_medium_patch16_reg4_gap_256", 256),
]


@pytest.fixture(scope="module", params=FAMILIES, ids=[f[0] for f in FAMILIES])
def family(request):
    """(our name, randomised timm model, native size, our model loaded from timm's state dict)."""
    ours_name, timm_name, size = request.param
    reference = timm_reference(timm_name)
    ours = backbones.build_backbone(ours_name).eval()
    ours.load_state(reference.state_dict())
    return ours_name, timm_name, reference, size, ours


def test_native_size_matches_timm(family):
    _, _, reference, size, ours = family
    assert num_params(ours) == num_params(reference)  # both without the classifier
    depth = len(ours.blocks)
    indices = [0, depth // 2, depth - 1]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        tokens, expected = reference.forward_intermediates(x, indices=indices)
        maps = ours.intermediate_maps(x, indices)
        ours_tokens = ours.forward_features(x)
    assert_all_match(maps, expected, "block maps")
    assert_matches(ours_tokens, tokens, "tokens")
    assert_matches(ours.pool(ours_tokens), reference.forward_head(tokens, pre_logits=True), "pre-logits")
    assert maps[-1].shape == (2, ours.embed_dim, size // 16, size // 16)


def test_other_size_with_interpolated_position_embedding(family):
    ours_name, timm_name, reference, size, ours = family
    new_size = (96, 160)
    # timm built for 96x160, its position embedding resampled by timm's own checkpoint filter
    resized_reference = timm.create_model(timm_name, num_classes=0, img_size=new_size).eval()
    resized_reference.load_state_dict(vit_module.checkpoint_filter_fn(reference.state_dict(), resized_reference))
    resized = backbones.build_backbone(ours_name, img_size=new_size).eval()
    report = resized.load_state(reference.state_dict())
    assert report.resized == [f"pos_embed ({size // 16}, {size // 16}) -> (6, 10)"]
    x = torch.randn(1, 3, *new_size)
    with torch.no_grad():
        expected_pooled = timm_pooled(resized_reference, x)
        expected_map = resized_reference.forward_intermediates(x, indices=1, intermediates_only=True)[0]
        # resampled on load (built for the size) ...
        assert_matches(resized.pooled_features(x), expected_pooled, f"pre-logits, built for {new_size}")
        assert_matches(resized.get_feature_maps(x)[0], expected_map, f"map, built for {new_size}")
        # ... and at run time (the native model on another input size, as in detection)
        assert_matches(ours.pooled_features(x), expected_pooled, f"pre-logits, native model at {new_size}")
        assert_matches(ours.get_feature_maps(x)[0], expected_map, f"map, native model at {new_size}")


def test_augreg_names_are_the_plain_vit():
    assert backbones.BACKBONES.get("vit_s16_augreg").defaults == backbones.BACKBONES.get("vit_s16").defaults


def test_contract_and_padding_of_odd_sizes():
    model = backbones.vit_ti16().eval()
    assert model.out_channels_list == (192,)
    assert model.feature_strides == (16,) and model.stride == 16
    x = torch.randn(1, 3, 100, 130)  # not multiples of 16: padded to 112 x 144
    with torch.no_grad():
        (fmap,) = model.get_feature_maps(x)
        assert torch.equal(model(x), fmap)
        padded = torch.nn.functional.pad(x, (0, 14, 0, 12))
        assert torch.equal(fmap, model.get_feature_maps(padded)[0])
    assert fmap.shape == (1, 192, 7, 9)


def test_deit3_repository_names_and_dinov2_register_layout_load():
    reference = timm_reference("deit3_small_patch16_224")
    repository = {
        k.replace(".ls1.gamma", ".gamma_1").replace(".ls2.gamma", ".gamma_2"): v
        for k, v in reference.state_dict().items()
    }
    ours = backbones.deit3_s16().eval()
    ours.load_state({"model": repository})
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert_matches(ours.pooled_features(x), timm_pooled(reference, x), "DeiT-3 repository layout")

    dino = timm_reference("vit_small_patch14_reg4_dinov2", img_size=112)
    state = dino.state_dict()
    # the DINOv2 repository stores the class token's position entry in pos_embed and names registers so
    layout = {k: v for k, v in state.items() if k not in ("reg_token", "cls_token", "pos_embed")}
    layout["register_tokens"] = state["reg_token"]
    layout["pos_embed"] = torch.cat([torch.randn(1, 1, 384), state["pos_embed"]], dim=1)
    layout["cls_token"] = state["cls_token"] - layout["pos_embed"][:, :1]
    layout["mask_token"] = torch.zeros(1, 384)
    ours = backbones.vit_s14_reg4_dinov2(img_size=112).eval()
    report = ours.load_state(layout)
    assert "mask_token" in report.ignored
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert_matches(ours.forward_features(x), dino.forward_features(x), "DINOv2 repository layout")


def _sam_reference(img_size=128):
    torch.manual_seed(0)
    model = sam_module.VisionTransformerSAM(
        img_size=img_size,
        patch_size=16,
        embed_dim=192,
        depth=4,
        num_heads=3,
        window_size=4,
        global_attn_indexes=(1, 3),
        use_rel_pos=True,
        use_abs_pos=True,
        neck_chans=0,
        num_classes=0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
    )
    return randomize_(model).eval()


@pytest.mark.parametrize("size", [(128, 128), (160, 96), (176, 208)])
def test_vitdet_windows_and_relative_positions_match_sam_encoder(size):
    # SAM's image encoder is ViTDet's backbone: window blocks with global blocks, decomposed
    # relative positions (interpolated for the global blocks at other sizes), padded windows.
    reference = _sam_reference()
    ours = VisionTransformer(
        img_size=128, embed_dim=192, depth=4, num_heads=3, window_size=4, global_blocks=(1, 3), rel_pos=True
    ).eval()
    report = ours.load_state({k: v for k, v in reference.state_dict().items() if not k.startswith("neck.")})
    assert not report.initialized and not report.ignored
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True, norm=False)
        assert_all_match(ours.intermediate_maps(x, [0, 1, 2, 3]), expected, f"ViTDet maps at {size}")


def test_vitdet_form_loads_a_classification_checkpoint():
    reference = timm_reference("deit_tiny_patch16_224")
    model = backbones.deit_ti16(img_size=128, window_size=4, global_blocks=(2, 5, 8, 11), rel_pos=True)
    assert model.cls_token is None and isinstance(model.norm, nn.Identity) and model.attn_pool is None
    report = model.load_state(reference.state_dict())
    assert {"cls_token", "norm.weight", "norm.bias"} <= set(report.ignored)
    assert report.resized == ["pos_embed (14, 14) -> (8, 8)"]
    assert len(report.initialized) == 2 * 12 and all(".rel_pos_" in k for k in report.initialized)
    expected = vit_module.resample_abs_pos_embed(reference.pos_embed[:, 1:], (8, 8), num_prefix_tokens=0)
    assert_matches(model.pos_embed.detach(), expected.detach(), "patch position embedding")
    assert model.blocks[0].attn.rel_pos_h.shape == (7, 64) and model.blocks[2].attn.rel_pos_h.shape == (15, 64)
    with pytest.raises(RuntimeError, match="no pooling head"):
        model.pooled_features(torch.randn(1, 3, 128, 128))


def test_position_embedding_layout_mismatch_is_reported():
    reference = timm_reference("deit3_small_patch16_224")  # no position entry for the class token
    with pytest.raises(ValueError, match="no_embed_class"):
        backbones.vit_s16().load_state(reference.state_dict())
