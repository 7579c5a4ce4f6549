"""Swin-T against timm: native size, another size, another window (bias tables resized), the
detection windowing (always partitioned, padded inputs) and the repository / detection layouts."""

import pytest
import torch
import torch.nn.functional as F
from ported_parity_support import assert_all_match, assert_matches, num_params, randomize_, timm, timm_reference

from pydetectron import backbones


@pytest.fixture(scope="module")
def reference():
    return timm_reference("swin_tiny_patch4_window7_224")


def _ours(state, **kwargs):
    model = backbones.swin_t(**kwargs).eval()
    model.load_state(state)
    return model


def test_native_size_matches_timm(reference):
    ours = _ours(reference.state_dict())
    assert num_params(ours) == num_params(reference)
    assert ours.out_channels_list == (96, 192, 384, 768) and ours.feature_strides == (4, 8, 16, 32)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        features, expected = reference.forward_intermediates(x)
        assert_all_match(ours.get_feature_maps(x), expected, "stage maps")
        assert_matches(ours.forward_features(x), features, "normed last stage")
        assert_matches(ours.pooled_features(x), reference.forward_head(features, pre_logits=True), "pre-logits")


def test_other_size_same_window(reference):
    # at 448 every stage is larger than the window: all blocks shift (at 224 the last stage does not)
    resized_reference = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0, img_size=448).eval()
    resized_reference.load_state_dict(reference.state_dict())
    ours = _ours(reference.state_dict(), img_size=448)
    assert ours.layers[3].blocks[1].shift == (3, 3)
    x = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        expected = timm_pooled_and_maps(resized_reference, x)
        assert_matches(ours.pooled_features(x), expected[0], "pre-logits at 448")
        assert_all_match(ours.get_feature_maps(x), expected[1], "stage maps at 448")


def timm_pooled_and_maps(model, x):
    features, maps = model.forward_intermediates(x)
    return model.forward_head(features, pre_logits=True), maps


def test_other_window_resizes_bias_tables_as_the_swin_repository(reference):
    # Swin's fine-tuning loader resizes each (2W-1)^2 table bicubically; the timm reference gets
    # tables resized that way here, ours resizes them on load.
    state = reference.state_dict()
    resized_state = {}
    for key, value in state.items():
        if key.endswith("relative_position_bias_table"):
            heads = value.shape[1]
            grid = value.permute(1, 0).reshape(1, heads, 13, 13)
            value = F.interpolate(grid, size=(11, 11), mode="bicubic", align_corners=False)
            value = value.reshape(heads, 121).permute(1, 0)
        resized_state[key] = value
    resized_reference = timm.create_model(
        "swin_tiny_patch4_window7_224", num_classes=0, img_size=192, window_size=6
    ).eval()
    resized_reference.load_state_dict(resized_state)
    ours = backbones.swin_t(img_size=192, window_size=6).eval()
    report = ours.load_state(state)
    assert len(report.resized) == 12  # every block's table
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        expected = timm_pooled_and_maps(resized_reference, x)
        assert_matches(ours.pooled_features(x), expected[0], "pre-logits, window 6")
        assert_all_match(ours.get_feature_maps(x), expected[1], "stage maps, window 6")


def test_detection_windowing_matches_timm_always_partition(reference):
    dynamic = timm.create_model(
        "swin_tiny_patch4_window7_224", num_classes=0, always_partition=True, strict_img_size=False
    ).eval()
    dynamic.load_state_dict(reference.state_dict())
    ours = _ours(reference.state_dict(), always_partition=True)
    x = torch.randn(1, 3, 224, 448)
    with torch.no_grad():
        assert_all_match(ours.get_feature_maps(x), dynamic.forward_intermediates(x, intermediates_only=True))


def _padded_reference_maps(model, x):
    """The Swin detection code's order on timm's blocks: pad the normed map to whole windows, then
    shift, attend (mask built for the padded map), shift back, crop."""
    x = model.patch_embed(x)
    maps = []
    for stage in model.layers:
        x = stage.downsample(x)
        for block in stage.blocks:
            _, h, w, _ = x.shape
            wh, ww = block.window_size
            y = F.pad(block.norm1(x), (0, 0, 0, (-w) % ww, 0, (-h) % wh))
            x = x + block._attn(y)[:, :h, :w]
            x = x + block.mlp(block.norm2(x))
        maps.append(x.permute(0, 3, 1, 2))
    return maps


def test_detection_windowing_pads_inputs_as_the_detection_code(reference):
    dynamic = timm.create_model(
        "swin_tiny_patch4_window7_224", num_classes=0, always_partition=True, strict_img_size=False
    ).eval()
    dynamic.load_state_dict(reference.state_dict())
    ours = _ours(reference.state_dict(), always_partition=True)
    x = torch.randn(1, 3, 200, 264)  # 50x66 patches: no stage is a whole number of windows
    with torch.no_grad():
        maps = ours.get_feature_maps(x)
        assert_all_match(maps, _padded_reference_maps(dynamic, x), "padded stage maps")
    assert [m.shape[-2:] for m in maps] == [(50, 66), (25, 33), (13, 17), (7, 9)]


def test_out_norms_normalise_each_map(reference):
    ours = backbones.swin_t(out_norms=True, always_partition=True).eval()
    report = ours.load_state(reference.state_dict())
    assert "norm.weight" in report.ignored and len(report.initialized) == 8  # out_norms.{0..3}.{weight,bias}
    randomize_(ours.out_norms)
    plain = _ours(reference.state_dict(), always_partition=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        maps, raw = ours.get_feature_maps(x), plain.get_feature_maps(x)
    for norm, normed, m in zip(ours.out_norms, maps, raw):
        expected = F.layer_norm(m.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, 1e-5)
        assert_matches(normed, expected.permute(0, 3, 1, 2), "normed map")
    with pytest.raises(RuntimeError, match="out_norms"):
        ours.pooled_features(x)


def test_repository_and_detection_checkpoints_load(reference):
    state = reference.state_dict()
    # the Swin repository: merging at the end of stages 0-2, buffers stored, classifier `head`
    repository = {}
    for key, value in state.items():
        if ".downsample." in key:
            stage = int(key.split(".")[1])
            key = key.replace(f"layers.{stage}.", f"layers.{stage - 1}.", 1)
        repository[key] = value
    repository["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    repository["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
    repository["head.weight"], repository["head.bias"] = torch.zeros(1000, 768), torch.zeros(1000)
    ours = backbones.swin_t().eval()
    report = ours.load_state({"model": repository})
    assert "head.weight" in report.ignored and not report.initialized
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert_matches(ours.pooled_features(x), timm_pooled_and_maps(reference, x)[0], "repository layout")

    # a Swin detection checkpoint: backbone.* with output norms norm0..3, neck and heads beside it
    detection = {f"backbone.{k}": v for k, v in repository.items() if not k.startswith(("norm.", "head."))}
    for i, dim in enumerate((96, 192, 384, 768)):
        detection[f"backbone.norm{i}.weight"] = torch.full((dim,), 2.0)
        detection[f"backbone.norm{i}.bias"] = torch.full((dim,), 0.5)
    detection["neck.lateral_convs.0.conv.weight"] = torch.zeros(256, 96, 1, 1)
    body = backbones.swin_t(out_norms=True, always_partition=True)
    report = body.load_state({"state_dict": detection, "meta": {"epoch": 12}})
    assert "neck.lateral_convs.0.conv.weight" in report.ignored and not report.initialized
    assert torch.equal(body.out_norms[2].weight, torch.full((384,), 2.0))
