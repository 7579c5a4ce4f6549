"""ConvNeXt and ConvNeXt-V2 against timm, output norms, and the repositories' layouts."""

import pytest
import torch
import torch.nn.functional as F
from ported_parity_support import assert_all_match, assert_matches, num_params, randomize_, timm_reference

from pydetectron import backbones

# ours, timm's: V1 tiny (smallest of T/S/B/L/XL), V2 atto (timm stores its MLPs as 1x1 convs), V2 tiny
FAMILIES = [("convnext_t", "convnext_tiny"), ("convnextv2_a", "convnextv2_atto"), ("convnextv2_t", "convnextv2_tiny")]


@pytest.fixture(scope="module", params=FAMILIES, ids=[f[0] for f in FAMILIES])
def family(request):
    ours_name, timm_name = request.param
    reference = timm_reference(timm_name)
    ours = backbones.build_backbone(ours_name).eval()
    ours.load_state(reference.state_dict())
    return reference, ours, ours_name


@pytest.mark.parametrize("size", [(224, 224), (160, 192)], ids=["native", "other"])
def test_matches_timm(family, size):
    # no position embedding: another input size is the same model on another input
    reference, ours, _ = family
    assert num_params(ours) == num_params(reference)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        features, expected = reference.forward_intermediates(x)
        maps = ours.get_feature_maps(x)
        assert_all_match(maps, expected, "stage maps")
        assert_matches(ours.forward_features(x), features, "last stage")
        assert_matches(ours.pooled_features(x), reference.forward_head(features, pre_logits=True), "pre-logits")
    assert [m.shape[-1] for m in maps] == [size[1] // s for s in ours.feature_strides]
    assert ours.feature_strides == (4, 8, 16, 32)


def _repository_layout(state: dict) -> dict:
    """timm's names -> the ConvNeXt / ConvNeXt-V2 repositories' (inverse of the documented renames)."""
    out = {}
    for key, value in state.items():
        if key.startswith("stem."):
            key = "downsample_layers.0." + key[len("stem.") :]
        elif ".downsample." in key:
            stage, rest = key[len("stages.") :].split(".downsample.")
            key = f"downsample_layers.{stage}.{rest}"
        elif key.startswith("stages."):
            _, stage, _, block, rest = key.split(".", 4)
            rest = rest.replace("conv_dw.", "dwconv.").replace("mlp.fc1.", "pwconv1.").replace("mlp.fc2.", "pwconv2.")
            if "mlp.grn." in rest:
                rest = rest.replace("mlp.grn.weight", "grn.gamma").replace("mlp.grn.bias", "grn.beta")
                value = value.reshape(1, 1, 1, -1)
            if value.ndim == 4 and "pwconv" in rest:
                value = value.flatten(1)
            key = f"stages.{stage}.{block}.{rest}"
        elif key.startswith("head.norm."):
            key = key[len("head.") :]
        out[key] = value
    out["head.weight"], out["head.bias"] = torch.zeros(1000, state["head.norm.weight"].shape[0]), torch.zeros(1000)
    return out


def test_repository_layout_loads(family):
    reference, ours, name = family
    repository = _repository_layout(reference.state_dict())
    fresh = backbones.build_backbone(name).eval()
    report = fresh.load_state({"model": repository})
    assert report.ignored == ["head.fc.bias", "head.fc.weight"] and not report.initialized
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_matches(fresh.pooled_features(x), ours.pooled_features(x), "repository layout")


def test_out_norms_and_detection_checkpoint():
    reference = timm_reference("convnext_tiny")
    body = backbones.convnext_t(out_norms=True).eval()
    report = body.load_state(reference.state_dict())
    assert "head.norm.weight" in report.ignored and report.initialized == sorted(
        f"out_norms.{i}.{p}" for i in range(4) for p in ("weight", "bias")
    )
    randomize_(body.out_norms)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        raw = reference.forward_intermediates(x, intermediates_only=True)
        for norm, normed, m in zip(body.out_norms, body.get_feature_maps(x), raw):
            expected = F.layer_norm(m.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, 1e-6)
            assert_matches(normed, expected.permute(0, 3, 1, 2), "normed map")
    # the ConvNeXt detection repository: backbone.* in repository names with norm0..3, heads beside
    detection = {f"backbone.{k}": v for k, v in _repository_layout(reference.state_dict()).items()}
    detection = {k: v for k, v in detection.items() if not k.startswith(("backbone.norm.", "backbone.head."))}
    for i, dim in enumerate((96, 192, 384, 768)):
        detection[f"backbone.norm{i}.weight"] = torch.full((dim,), 3.0)
        detection[f"backbone.norm{i}.bias"] = torch.zeros(dim)
    detection["roi_head.bbox_head.fc_cls.weight"] = torch.zeros(81, 1024)
    fresh = backbones.convnext_t(out_norms=True)
    report = fresh.load_state({"state_dict": detection})
    assert report.ignored == ["roi_head.bbox_head.fc_cls.weight"] and not report.initialized
    assert torch.equal(fresh.out_norms[3].weight, torch.full((768,), 3.0))
