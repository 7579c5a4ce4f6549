"""Box heads: output shapes and complete Detectron blob-name mappings."""

import torch

from pydetectron.modeling.roi_heads.box_heads import ConvFCHead, FastRCNNOutputs, MLPHead


def assert_mapping_covers(module):
    mapping, _ = module.detectron_weight_mapping()
    assert set(mapping) == set(module.state_dict()) - {n for n in module.state_dict() if "running" in n}
    assert len(set(mapping.values())) == len(mapping)
    return mapping


def test_mlp_head():
    head = MLPHead(16, 7, 32)
    assert head(torch.randn(5, 16, 7, 7)).shape == (5, 32)
    assert assert_mapping_covers(head)["fc6.weight"] == "fc6_w"


def test_conv_fc_heads_plain_and_gn():
    plain = ConvFCHead(16, 7, num_convs=2, conv_dim=8, hidden_dim=32)
    assert plain(torch.randn(3, 16, 7, 7)).shape == (3, 32)
    mapping = assert_mapping_covers(plain)
    assert {"head_conv1_w", "head_conv1_b", "head_conv2_w", "fc6_w"} <= set(mapping.values())
    gn = ConvFCHead(16, 7, num_convs=4, conv_dim=8, hidden_dim=32, use_gn=True, gn_num_groups=4)
    assert gn(torch.randn(2, 16, 7, 7)).shape == (2, 32)
    mapping = assert_mapping_covers(gn)
    assert {"head_conv4_w", "head_conv4_gn_s", "head_conv4_gn_b"} <= set(mapping.values())
    assert "head_conv1_b" not in mapping.values()


def test_outputs_specific_and_agnostic():
    out = FastRCNNOutputs(32, 81)
    scores, deltas = out(torch.randn(4, 32))
    assert scores.shape == (4, 81) and deltas.shape == (4, 324)
    _, deltas = FastRCNNOutputs(32, 81, class_agnostic_bbox_reg=True)(torch.randn(4, 32))
    assert deltas.shape == (4, 8)
    assert set(assert_mapping_covers(out).values()) == {"cls_score_w", "cls_score_b", "bbox_pred_w", "bbox_pred_b"}
