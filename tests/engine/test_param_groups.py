"""AdamW parameter groups: which parameters decay, layer-wise LR scales (hand-computed, and the
ConvNeXt detection recipe's layer numbering written out here), and AdamW's behaviour on them."""

import math

import pytest
import torch
from torch import nn

from pydetectron.backbones.ported import Cait, ConvNeXt, MlpMixer, SwinTransformer, VisionTransformer
from pydetectron.engine.param_groups import layer_wise_lr_decay_param_groups, weight_decay_param_groups


class Detector(nn.Module):
    """A ViT body with a neck and a head around it, plus one frozen parameter."""

    def __init__(self):
        super().__init__()
        self.backbone = VisionTransformer(
            img_size=32, embed_dim=32, depth=3, num_heads=2, reg_tokens=2, init_values=0.1, global_pool="map"
        )
        self.neck = nn.Conv2d(32, 8, 1)
        self.head = nn.Linear(8, 4)
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)


def _by_name(groups):
    table = {}
    for group in groups:
        assert len(group["param_names"]) == len(group["params"])
        for name in group["param_names"]:
            assert name not in table, f"{name} is in two groups"
            table[name] = (group["lr"], group["weight_decay"], group["lr_mult"])
    return table


def test_vit_layer_decay_and_no_decay_sets():
    model = Detector()
    groups = layer_wise_lr_decay_param_groups(model, base_lr=1e-3, weight_decay=0.05, decay_rate=0.5)
    table = _by_name(groups)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(table) == trainable and "frozen" not in table
    num_layers = 4  # 3 blocks + 1
    expected = {
        # name: (layer id, decays)
        "backbone.patch_embed.proj.weight": (0, True),
        "backbone.patch_embed.proj.bias": (0, False),
        "backbone.pos_embed": (0, False),
        "backbone.cls_token": (0, False),
        "backbone.reg_token": (0, False),
        "backbone.blocks.0.attn.qkv.weight": (1, True),
        "backbone.blocks.1.attn.qkv.weight": (2, True),
        "backbone.blocks.1.attn.qkv.bias": (2, False),
        "backbone.blocks.1.norm1.weight": (2, False),
        "backbone.blocks.1.ls1.gamma": (2, False),
        "backbone.blocks.2.mlp.fc2.weight": (3, True),
        "backbone.norm.weight": (4, False),
        "backbone.attn_pool.latent": (4, False),
        "backbone.attn_pool.q.weight": (4, True),
        "neck.weight": (4, True),
        "head.bias": (4, False),
    }
    for name, (layer, decays) in expected.items():
        lr, weight_decay, _ = table[name]
        assert lr == pytest.approx(1e-3 * 0.5 ** (num_layers - layer)), name
        assert weight_decay == (0.05 if decays else 0.0), name
    assert all(g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 for g in groups)


def test_adamw_takes_the_groups_and_decays_only_the_decay_groups():
    model = Detector()
    groups = layer_wise_lr_decay_param_groups(
        model, base_lr=0.1, weight_decay=0.5, decay_rate=0.5, betas=(0.8, 0.99), eps=1e-6
    )
    optimizer = torch.optim.AdamW(groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for param in model.parameters():
        param.grad = torch.zeros_like(param)  # no gradient step: only the decoupled decay acts
    optimizer.step()
    table = _by_name(groups)
    for name, param in model.named_parameters():
        if name not in table:
            continue
        lr, weight_decay, _ = table[name]
        torch.testing.assert_close(param.detach(), before[name] * (1 - lr * weight_decay), rtol=0, atol=1e-7)
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.99)


def test_plain_adamw_groups():
    model = Detector()
    groups = weight_decay_param_groups(model, lr=2e-4, weight_decay=0.1)
    assert [g["name"] for g in groups] == ["decay", "no_decay"]
    decay, no_decay = (set(g["param_names"]) for g in groups)
    assert {"backbone.blocks.0.attn.qkv.weight", "neck.weight", "head.weight"} <= decay
    assert {"backbone.pos_embed", "backbone.reg_token", "backbone.blocks.0.norm2.bias", "head.bias"} <= no_decay
    assert all(g["lr"] == 2e-4 and g["lr_mult"] == 1.0 for g in groups)
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["weight_decay"] == 0.1


def test_relative_position_tables_do_not_decay():
    vitdet = VisionTransformer(img_size=32, embed_dim=32, depth=2, num_heads=2, window_size=1, rel_pos=True)
    swin = SwinTransformer(img_size=32, embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=2)
    for model, table_name in (
        (vitdet, "blocks.0.attn.rel_pos_h"),
        (swin, "layers.0.blocks.0.attn.relative_position_bias_table"),
    ):
        groups = weight_decay_param_groups(model, lr=1.0, weight_decay=0.1)
        assert table_name in groups[1]["param_names"]


def test_swin_layer_ids():
    swin = SwinTransformer(img_size=64, embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), window_size=2)
    assert swin.num_lr_layers == 6
    groups = layer_wise_lr_decay_param_groups(swin, base_lr=1.0, weight_decay=0.0, decay_rate=0.5)
    table = _by_name(groups)
    for name, layer in {
        "patch_embed.norm.weight": 0,
        "layers.0.blocks.0.attn.qkv.weight": 1,
        "layers.1.downsample.reduction.weight": 1,  # with the last block before it
        "layers.2.blocks.1.mlp.fc1.weight": 4,
        "layers.3.blocks.0.norm1.weight": 5,
        "norm.weight": 6,
    }.items():
        assert table[name][2] == 0.5 ** (6 - layer), name


def test_cait_and_mixer_layer_ids():
    cait = Cait(img_size=32, embed_dim=16, depth=3, num_heads=2, depth_token_only=2)
    assert cait.num_lr_layers == 6
    ids = {n: cait.lr_layer_id(n) for n, _ in cait.named_parameters()}
    assert ids["cls_token"] == ids["pos_embed"] == ids["patch_embed.proj.weight"] == 0
    assert ids["blocks.2.attn.proj_l.weight"] == 3 and ids["blocks_token_only.1.attn.q.weight"] == 5
    assert ids["norm.weight"] == 6
    mixer = MlpMixer(img_size=32, embed_dim=16, num_blocks=2)
    assert mixer.lr_layer_id("stem.proj.weight") == 0 and mixer.lr_layer_id("blocks.1.norm1.weight") == 2
    assert mixer.lr_layer_id("norm.bias") == mixer.num_lr_layers == 3


def _convnext_recipe_layer_id(name: str, num_max_layer: int) -> int:
    """The ConvNeXt detection repository's `get_num_layer_layer_wise` on its own parameter names."""
    if name.startswith("backbone.downsample_layers"):
        stage_id = int(name.split(".")[2])
        return {0: 0, 1: 2, 2: 3, 3: num_max_layer}[stage_id]
    if name.startswith("backbone.stages"):
        stage_id, block_id = int(name.split(".")[2]), int(name.split(".")[3])
        return {0: 1, 1: 2, 2: 3 + block_id // 3, 3: num_max_layer}[stage_id]
    return num_max_layer + 1


def _repository_name(name: str) -> str:
    if name.startswith("stem."):
        return "backbone.downsample_layers.0." + name[len("stem.") :]
    if ".downsample." in name:
        stage, rest = name[len("stages.") :].split(".downsample.")
        return f"backbone.downsample_layers.{stage}.{rest}"
    if name.startswith("stages."):
        _, stage, _, block, rest = name.split(".", 4)
        return f"backbone.stages.{stage}.{block}.{rest}"
    return "backbone." + name


@pytest.mark.parametrize("depths,num_max_layer", [((3, 3, 9, 3), 6), ((3, 3, 27, 3), 12)])
def test_convnext_layer_ids_follow_the_detection_recipe(depths, num_max_layer):
    with torch.device("meta"):
        model = ConvNeXt(depths=depths, dims=(8, 16, 32, 64), out_norms=True)
    assert model.num_lr_layers == num_max_layer + 1
    for name, _ in model.named_parameters():
        if name.startswith("out_norms."):
            assert model.lr_layer_id(name) == num_max_layer + 1
        else:
            assert model.lr_layer_id(name) == _convnext_recipe_layer_id(_repository_name(name), num_max_layer), name
    # scale decay^(num_layers - id): the recipe's decay^(num_max_layer + 1 - id)
    groups = layer_wise_lr_decay_param_groups(model, base_lr=1.0, weight_decay=0.05, decay_rate=0.9)
    stem = _by_name(groups)["stem.0.weight"]
    assert math.isclose(stem[0], 0.9 ** (num_max_layer + 1))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="one backbone with lr_layer_id"):
        layer_wise_lr_decay_param_groups(nn.Linear(2, 2), base_lr=1.0, weight_decay=0.0, decay_rate=0.5)
    groups = layer_wise_lr_decay_param_groups(
        nn.Linear(2, 2), 1.0, 0.0, 0.5, num_layers=2, layer_id_fn=lambda name: 1 if name == "weight" else 2
    )
    assert _by_name(groups)["weight"][0] == 0.5
    with pytest.raises(ValueError, match="decay_rate"):
        layer_wise_lr_decay_param_groups(Detector(), base_lr=1.0, weight_decay=0.0, decay_rate=1.5)
    with pytest.raises(ValueError, match="outside"):
        layer_wise_lr_decay_param_groups(Detector(), 1.0, 0.0, 0.5, num_layers=2)
