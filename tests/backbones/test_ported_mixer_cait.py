"""MLP-Mixer and CaiT against timm (the randomised timm model's state dict loaded into ours)."""

import pytest
import torch
from ported_parity_support import assert_all_match, assert_matches, num_params, timm_reference

from pydetectron import backbones

cait_module = pytest.importorskip("timm.models.cait")
timm_layers = pytest.importorskip("timm.layers")


@pytest.mark.parametrize("size", [224, 160])
def test_mixer_matches_timm(size):
    # A Mixer's token MLPs are sized by the patch count: no position embedding to resample, so
    # the other size is a model built for it on both sides (timm's weights at that size).
    reference = timm_reference("mixer_s32_224", img_size=size)
    ours = backbones.mixer_s32(img_size=size).eval()
    ours.load_state(reference.state_dict())
    assert num_params(ours) == num_params(reference)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        tokens, expected = reference.forward_intermediates(x, indices=[0, 3, 7])
        assert_all_match(ours.intermediate_maps(x, [0, 3, 7]), expected, "block maps")
        assert_matches(ours.get_feature_maps(x)[0], expected[-1], "feature map")
        assert_matches(ours.forward_features(x), tokens, "tokens")
        assert_matches(ours.pooled_features(x), reference.forward_head(tokens, pre_logits=True), "pre-logits")
    assert ours.feature_strides == (32,) and ours.out_channels_list == (512,)


def test_mixer_refuses_another_input_size():
    model = backbones.mixer_s32()
    with pytest.raises(ValueError, match="img_size"):
        model(torch.randn(1, 3, 256, 256))


@pytest.fixture(scope="module")
def cait_reference():
    return timm_reference("cait_xxs24_224")


def test_cait_native_size_matches_timm(cait_reference):
    ours = backbones.cait_xxs24().eval()
    ours.load_state(cait_reference.state_dict())
    assert num_params(ours) == num_params(cait_reference)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens, expected = cait_reference.forward_intermediates(x, indices=[0, 11, 23])
        assert_all_match(ours.intermediate_maps(x, [0, 11, 23]), expected, "block maps")
        ours_tokens = ours.forward_features(x)
    assert_matches(ours_tokens, tokens, "class + patch tokens")
    assert_matches(ours_tokens[:, 0], cait_reference.forward_head(tokens, pre_logits=True), "pre-logits")


def test_cait_other_size_with_interpolated_position_embedding(cait_reference):
    # timm's CaiT filter does not resample, so the reference model gets timm's resample_abs_pos_embed
    state = dict(cait_reference.state_dict())
    resized_reference = timm_reference("cait_xxs24_224", img_size=160)
    state_160 = dict(state)
    state_160["pos_embed"] = timm_layers.resample_abs_pos_embed(state["pos_embed"], (10, 10), num_prefix_tokens=0)
    resized_reference.load_state_dict(state_160)
    ours = backbones.cait_xxs24(img_size=160).eval()
    report = ours.load_state({"model": {f"module.{k}": v for k, v in state.items()}})  # the DeiT repository's file
    assert report.resized == ["pos_embed (14, 14) -> (10, 10)"]
    native = backbones.cait_xxs24().eval()
    native.load_state(state)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        expected = resized_reference.forward_head(resized_reference.forward_features(x), pre_logits=True)
        assert_matches(ours.pooled_features(x), expected, "pre-logits at 160")
        assert_matches(native.pooled_features(x), expected, "native model at 160 (run-time resampling)")
