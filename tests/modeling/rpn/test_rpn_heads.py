"""RPN heads: output shapes, Detectron init and blob names, flattening order."""

import pytest
import torch
import torch.nn.functional as F

from pydetectron.modeling.rpn.heads import FPNRPNHead, SingleScaleRPNHead, flatten_rpn_outputs


def test_single_scale_head_shapes_and_init():
    torch.manual_seed(0)
    head = SingleScaleRPNHead(in_channels=64, num_anchors=15)
    logits, deltas = head([torch.randn(2, 64, 5, 7)])
    assert [tuple(t.shape) for t in logits] == [(2, 15, 5, 7)]
    assert [tuple(t.shape) for t in deltas] == [(2, 60, 5, 7)]
    for layer in (head.conv, head.cls_logits, head.bbox_pred):
        assert torch.count_nonzero(layer.bias) == 0
    # Gaussian std 0.01: 64 * 64 * 9 samples give a std estimate within a few percent.
    assert abs(head.conv.weight.std().item() - 0.01) < 0.0005


def test_head_hidden_width_and_manual_forward():
    torch.manual_seed(1)
    head = SingleScaleRPNHead(in_channels=8, num_anchors=3, hidden_channels=5)
    x = torch.randn(1, 8, 4, 4)
    logits, deltas = head(x)
    hidden = F.relu(F.conv2d(x, head.conv.weight, head.conv.bias, padding=1))
    assert head.conv.out_channels == 5
    torch.testing.assert_close(logits[0], F.conv2d(hidden, head.cls_logits.weight, head.cls_logits.bias))
    torch.testing.assert_close(deltas[0], F.conv2d(hidden, head.bbox_pred.weight, head.bbox_pred.bias))


def test_fpn_head_shares_weights_over_levels():
    torch.manual_seed(2)
    head = FPNRPNHead(in_channels=16, num_anchors=3, min_level=2)
    maps = [torch.randn(2, 16, s, s) for s in (2, 4, 8)]  # coarsest first
    logits, deltas = head(maps)
    assert [tuple(t.shape) for t in logits] == [(2, 3, s, s) for s in (2, 4, 8)]
    assert [tuple(t.shape) for t in deltas] == [(2, 12, s, s) for s in (2, 4, 8)]
    alone, _ = head([maps[1]])
    torch.testing.assert_close(alone[0], logits[1])
    assert len(list(head.parameters())) == 6


def test_detectron_blob_names():
    single, _ = SingleScaleRPNHead(8, 3).detectron_weight_mapping()
    assert single == {
        "conv.weight": "conv_rpn_w",
        "conv.bias": "conv_rpn_b",
        "cls_logits.weight": "rpn_cls_logits_w",
        "cls_logits.bias": "rpn_cls_logits_b",
        "bbox_pred.weight": "rpn_bbox_pred_w",
        "bbox_pred.bias": "rpn_bbox_pred_b",
    }
    head = FPNRPNHead(8, 3, min_level=2)
    fpn, orphans = head.detectron_weight_mapping()
    assert orphans == []
    assert set(fpn.values()) == {
        "conv_rpn_fpn2_w",
        "conv_rpn_fpn2_b",
        "rpn_cls_logits_fpn2_w",
        "rpn_cls_logits_fpn2_b",
        "rpn_bbox_pred_fpn2_w",
        "rpn_bbox_pred_fpn2_b",
    }
    assert set(fpn) == set(head.state_dict())


def test_flatten_order_is_location_major_then_anchor():
    n, a, h, w = 2, 3, 2, 4
    logits = [torch.arange(n * a * h * w, dtype=torch.float32).reshape(n, a, h, w)]
    deltas = [torch.arange(n * 4 * a * h * w, dtype=torch.float32).reshape(n, 4 * a, h, w)]
    flat_logits, flat_deltas = flatten_rpn_outputs(logits, deltas)
    assert flat_logits.shape == (n, h * w * a) and flat_deltas.shape == (n, h * w * a, 4)
    for image in range(n):
        for y in range(h):
            for x in range(w):
                for anchor in range(a):
                    row = (y * w + x) * a + anchor
                    assert flat_logits[image, row] == logits[0][image, anchor, y, x]
                    expected = deltas[0][image, 4 * anchor : 4 * anchor + 4, y, x]
                    assert torch.equal(flat_deltas[image, row], expected)


def test_flatten_rejects_mismatched_deltas():
    with pytest.raises(ValueError, match="bbox_deltas"):
        flatten_rpn_outputs([torch.zeros(1, 3, 2, 2)], [torch.zeros(1, 8, 2, 2)])
