"""SOLVER.TYPE AdamW with SOLVER.LAYER_DECAY: the optimizer builder's groups for a small ViTDet
Mask R-CNN, checked parameter by parameter against hand-computed LR and weight decay."""

from pathlib import Path

import pytest
import torch

from pydetectron.config import ConfigValueError, assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.engine.optimizer import LRUpdater, SolverSettings, build_optimizer
from pydetectron.modeling import build_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toolbox" / "shapes_mask_rcnn_vit_ti16_simple_fpn.yaml"
BASE_LR, DECAY, WD = 2e-4, 0.5, 0.05


def vit_model(*extra):
    cfg = get_cfg()
    merge_cfg_from_file(CONFIG, target=cfg)
    merge_cfg_from_list(
        ["TOOLBOX.BACKBONE_KWARGS", "{'depth': 2}", "TOOLBOX.NECK_CHANNELS", "32", "SOLVER.BASE_LR", str(BASE_LR),
         "SOLVER.LAYER_DECAY", str(DECAY), "SOLVER.WEIGHT_DECAY", str(WD), "SOLVER.BETAS", "(0.8, 0.95)", *extra],
        target=cfg,
    )  # fmt: skip
    assert_and_infer_cfg(target=cfg)
    return cfg, build_model(cfg)


def test_groups_have_the_hand_computed_lr_and_weight_decay():
    cfg, model = vit_model()
    optimizer = build_optimizer(model, SolverSettings.from_cfg(cfg), BASE_LR)
    assert isinstance(optimizer, torch.optim.AdamW)
    by_param = {}
    for group in optimizer.param_groups:
        assert group["betas"] == (0.8, 0.95)
        for name in group["param_names"]:
            by_param[name] = (group["lr"], group["weight_decay"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_param) == trainable
    vit = "body.backbone.net."
    # depth 2 -> 3 LR layers: embeddings 0, block i -> i + 1, everything else 3 (LR x 1)
    expected = {
        vit + "patch_embed.proj.weight": (BASE_LR * 0.125, WD),
        vit + "patch_embed.proj.bias": (BASE_LR * 0.125, 0.0),
        vit + "pos_embed": (BASE_LR * 0.125, 0.0),
        vit + "blocks.0.attn.qkv.weight": (BASE_LR * 0.25, WD),
        vit + "blocks.0.attn.qkv.bias": (BASE_LR * 0.25, 0.0),
        vit + "blocks.0.norm1.weight": (BASE_LR * 0.25, 0.0),
        vit + "blocks.0.attn.rel_pos_h": (BASE_LR * 0.25, 0.0),
        vit + "blocks.1.mlp.fc1.weight": (BASE_LR * 0.5, WD),
        vit + "blocks.1.attn.rel_pos_w": (BASE_LR * 0.5, 0.0),
        "body.neck.simfp_2.0.weight": (BASE_LR, WD),  # the first deconvolution of the stride-4 level
        "body.neck.simfp_2.1.weight": (BASE_LR, 0.0),  # its LayerNorm
        "body.neck.simfp_5.2.norm.weight": (BASE_LR, 0.0),
        "rpn.head.conv.weight": (BASE_LR, WD),
        "roi_heads.box.outputs.cls_score.bias": (BASE_LR, 0.0),
    }
    for name, (lr, wd) in expected.items():
        assert by_param[name] == pytest.approx((lr, wd), rel=1e-12), name
    # the schedule's LR moves every group by its multiplier
    LRUpdater(optimizer, SolverSettings.from_cfg(cfg)).set_lr(BASE_LR / 10)
    lrs = {n: g["lr"] for g in optimizer.param_groups for n in g["param_names"]}
    assert lrs[vit + "pos_embed"] == pytest.approx(BASE_LR * 0.125 / 10)
    assert lrs["rpn.head.conv.weight"] == pytest.approx(BASE_LR / 10)


def test_adamw_without_layer_decay_has_two_groups_and_sgd_refuses_layer_decay():
    cfg, model = vit_model("SOLVER.LAYER_DECAY", "1.0", "SOLVER.TYPE", "adamw")
    optimizer = build_optimizer(model, SolverSettings.from_cfg(cfg), BASE_LR)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        ("decay", BASE_LR, WD),
        ("no_decay", BASE_LR, 0.0),
    ]
    with pytest.raises(ConfigValueError, match="SOLVER.LAYER_DECAY: needs SOLVER.TYPE 'AdamW'"):
        vit_model("SOLVER.TYPE", "SGD")
    with pytest.raises(ValueError, match="LAYER_DECAY 0.5 needs SOLVER.TYPE 'AdamW'"):
        SolverSettings(optimizer="SGD", layer_decay=0.5)
