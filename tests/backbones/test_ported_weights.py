"""Weight files of the ported backbones: safetensors / .pth round trips, refusal of pickles that
run code, clear errors, and parameter counts of every registered variant against timm's."""

import argparse

import pytest
import torch
from ported_parity_support import timm

from pydetectron import backbones
from pydetectron.backbones.ported import PORTED_NAMES, read_weights_file

safetensors_torch = pytest.importorskip("safetensors.torch")

# every registered ported name -> timm's model of the same architecture
TIMM_NAMES = {
    "vit_ti16": "vit_tiny_patch16_224",
    "vit_s16": "vit_small_patch16_224",
    "vit_s32": "vit_small_patch32_224",
    "vit_b16": "vit_base_patch16_224",
    "vit_b32": "vit_base_patch32_224",
    "vit_b8": "vit_base_patch8_224",
    "vit_l16": "vit_large_patch16_224",
    "vit_l32": "vit_large_patch32_224",
    "vit_l14": "vit_large_patch14_224",
    "vit_h14": "vit_huge_patch14_224",
    "vit_ti16_augreg": "vit_tiny_patch16_224",
    "vit_s16_augreg": "vit_small_patch16_224",
    "vit_s32_augreg": "vit_small_patch32_224",
    "vit_b16_augreg": "vit_base_patch16_224",
    "vit_b32_augreg": "vit_base_patch32_224",
    "vit_b8_augreg": "vit_base_patch8_224",
    "vit_l16_augreg": "vit_large_patch16_224",
    "deit_ti16": "deit_tiny_patch16_224",
    "deit_s16": "deit_small_patch16_224",
    "deit_b16": "deit_base_patch16_224",
    "deit_ti16_distilled": "deit_tiny_distilled_patch16_224",
    "deit_s16_distilled": "deit_small_distilled_patch16_224",
    "deit_b16_distilled": "deit_base_distilled_patch16_224",
    "deit3_s16": "deit3_small_patch16_224",
    "deit3_m16": "deit3_medium_patch16_224",
    "deit3_b16": "deit3_base_patch16_224",
    "deit3_l16": "deit3_large_patch16_224",
    "deit3_h14": "deit3_huge_patch14_224",
    "siglip_b16": "vit_base_patch16_siglip_224",
    "siglip_b32": "vit_base_patch32_siglip_256",
    "siglip_l16": "vit_large_patch16_siglip_256",
    "siglip_so400m14": "vit_so400m_patch14_siglip_224",
    "siglip_so400m16": "vit_so400m_patch16_siglip_256",
    "vit_m16_reg4_gap": "vit_medium_patch16_reg4_gap_256",
    "vit_b16_reg4_gap": "vit_base_patch16_reg4_gap_256",
    "vit_s14_reg4_dinov2": "vit_small_patch14_reg4_dinov2",
    "vit_b14_reg4_dinov2": "vit_base_patch14_reg4_dinov2",
    "vit_l14_reg4_dinov2": "vit_large_patch14_reg4_dinov2",
    "mixer_s16": "mixer_s16_224",
    "mixer_s32": "mixer_s32_224",
    "mixer_b16": "mixer_b16_224",
    "mixer_b32": "mixer_b32_224",
    "mixer_l16": "mixer_l16_224",
    "mixer_l32": "mixer_l32_224",
    "cait_xxs24": "cait_xxs24_224",
    "cait_xxs36": "cait_xxs36_224",
    "cait_xs24": "cait_xs24_384",
    "cait_s24": "cait_s24_224",
    "cait_s36": "cait_s36_384",
    "cait_m36": "cait_m36_384",
    "cait_m48": "cait_m48_448",
    "swin_t": "swin_tiny_patch4_window7_224",
    "swin_s": "swin_small_patch4_window7_224",
    "swin_b": "swin_base_patch4_window7_224",
    "swin_l": "swin_large_patch4_window7_224",
    "swin_b_w12": "swin_base_patch4_window12_384",
    "swin_l_w12": "swin_large_patch4_window12_384",
    "convnext_t": "convnext_tiny",
    "convnext_s": "convnext_small",
    "convnext_b": "convnext_base",
    "convnext_l": "convnext_large",
    "convnext_xl": "convnext_xlarge",
    "convnextv2_a": "convnextv2_atto",
    "convnextv2_f": "convnextv2_femto",
    "convnextv2_p": "convnextv2_pico",
    "convnextv2_n": "convnextv2_nano",
    "convnextv2_t": "convnextv2_tiny",
    "convnextv2_b": "convnextv2_base",
    "convnextv2_l": "convnextv2_large",
    "convnextv2_h": "convnextv2_huge",
}


def test_every_ported_variant_is_registered_and_counted_against_timm():
    assert sorted(PORTED_NAMES) == sorted(TIMM_NAMES)
    assert set(PORTED_NAMES) <= set(backbones.list_backbones())
    with torch.device("meta"):  # shapes only: the large models cost nothing to build
        for ours_name, timm_name in TIMM_NAMES.items():
            ours = backbones.build_backbone(ours_name)
            reference = timm.create_model(timm_name, pretrained=False, num_classes=0)
            counts = (sum(p.numel() for p in ours.parameters()), sum(p.numel() for p in reference.parameters()))
            assert counts[0] == counts[1], f"{ours_name} vs {timm_name}: {counts}"


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    return backbones.vit_ti16(img_size=64).eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_round_trip_through_a_file(tiny_vit, tmp_path, suffix):
    path = tmp_path / f"vit_ti16{suffix}"
    state = tiny_vit.state_dict()
    if suffix == ".safetensors":
        safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # as the DeiT repository saves: weights beside the training options
        torch.save({"model": state, "epoch": 300, "args": argparse.Namespace(lr=5e-4, model="deit")}, path)
    loaded = backbones.vit_ti16(pretrained=str(path), img_size=64).eval()
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.pooled_features(x), tiny_vit.pooled_features(x))


class _RunsCode:
    """Unpickling this creates `marker`: a stand-in for a checkpoint that runs code when loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused_and_runs_nothing(tiny_vit, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "malicious.pth"
    torch.save({"model": {**tiny_vit.state_dict(), "payload": _RunsCode(marker)}}, path)
    with pytest.raises(ValueError, match="refused or unreadable"):
        backbones.vit_ti16(pretrained=str(path), img_size=64)
    assert not marker.exists()
    # the payload is real: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_bad_files_give_clear_errors(tiny_vit, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_weights_file(tmp_path / "missing.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth"):
        read_weights_file(corrupt)
    text = tmp_path / "strings.pth"
    torch.save({"model": {"patch_embed.proj.weight": "a string"}}, text)
    with pytest.raises(ValueError, match="not tensors"):
        read_weights_file(text)
    other = tmp_path / "vit_s16.safetensors"
    safetensors_torch.save_file(backbones.vit_s16(img_size=64).state_dict(), str(other))
    with pytest.raises(
        ValueError, match=r"shape mismatches: blocks\.0\.attn\.proj\.bias: file \(384,\) vs model \(192,\)"
    ):
        backbones.vit_ti16(pretrained=str(other), img_size=64)
    partial = {k: v for k, v in tiny_vit.state_dict().items() if not k.startswith("blocks.11.")}
    with pytest.raises(ValueError, match=r"missing .*blocks\.11\."):
        backbones.vit_ti16(img_size=64).load_state(partial)
    extra = {**tiny_vit.state_dict(), "decoder.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected .*decoder\.weight"):
        backbones.vit_ti16(img_size=64).load_state(extra)


def test_classifier_heads_are_ignored_and_reported(tiny_vit):
    state = {**tiny_vit.state_dict(), "head.weight": torch.zeros(1000, 192), "head.bias": torch.zeros(1000)}
    report = backbones.vit_ti16(img_size=64).load_state(state)
    assert report.ignored == ["head.bias", "head.weight"] and not report.initialized
    assert "2 ignored" in report.summary()
