"""RetinaNet head: torchvision's head outputs, Detectron's blob names, prior initialisation."""

import math

import pytest
import torch
from torchvision.models.detection.retinanet import RetinaNetHead as TorchvisionHead

from pydetectron.modeling.retinanet import RetinaNetHead, flatten_dense_outputs
from pydetectron.modeling.retinanet.head import sigmoid_prior_bias, softmax_prior_bias


def _features(channels=16, shapes=((6, 5), (3, 3), (2, 1))):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, channels, h, w, generator=g) for h, w in shapes]


def test_outputs_match_torchvision_head():
    torch.manual_seed(0)
    theirs = TorchvisionHead(16, num_anchors=9, num_classes=7).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.2)
    ours = RetinaNetHead(16, num_anchors=9, num_logits=7).eval()
    state = theirs.state_dict()
    ours.load_state_dict({name: state[other] for name, other in ours.torchvision_weight_mapping().items()})
    features = _features()
    with torch.no_grad():
        expected = theirs(features)
        logits, deltas = flatten_dense_outputs(*ours(features), num_logits=7, box_dim=4)
    torch.testing.assert_close(logits, expected["cls_logits"], rtol=0, atol=0)
    torch.testing.assert_close(deltas, expected["bbox_regression"], rtol=0, atol=0)


def test_detectron_blob_names():
    head = RetinaNetHead(16, num_anchors=9, num_logits=80, num_convs=2, min_level=3)
    mapping, orphans = head.detectron_weight_mapping()
    assert orphans == []
    expected = {
        "cls_tower.0.weight": "retnet_cls_conv_n0_fpn3_w",
        "cls_tower.1.bias": "retnet_cls_conv_n1_fpn3_b",
        "bbox_tower.0.weight": "retnet_bbox_conv_n0_fpn3_w",
        "bbox_tower.1.bias": "retnet_bbox_conv_n1_fpn3_b",
        "cls_logits.weight": "retnet_cls_pred_fpn3_w",
        "bbox_pred.bias": "retnet_bbox_pred_fpn3_b",
    }
    assert expected.items() <= mapping.items()
    assert set(mapping) == set(head.state_dict())
    shared = RetinaNetHead(16, num_anchors=9, num_logits=80, num_convs=2, share_tower=True, min_level=2)
    names = set(shared.detectron_weight_mapping()[0].values())
    assert not any("bbox_conv" in name for name in names)
    assert {"retnet_cls_conv_n1_fpn2_w", "retnet_bbox_pred_fpn2_w"} <= names


def test_prior_initialisation():
    head = RetinaNetHead(16, num_anchors=3, num_logits=4, cls_bias=sigmoid_prior_bias(0.01))
    torch.testing.assert_close(torch.sigmoid(head.cls_logits.bias), torch.full((12,), 0.01))
    assert head.cls_logits.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert torch.all(head.bbox_pred.bias == 0)
    softmax = RetinaNetHead(16, num_anchors=3, num_logits=5, cls_bias=softmax_prior_bias(5, 0.01))
    probs = torch.softmax(softmax.cls_logits.bias.view(3, 5), dim=1)
    # background starts at 1 - prior, the prior split evenly over the 4 classes
    torch.testing.assert_close(probs[:, 0], torch.full((3,), 0.99))
    torch.testing.assert_close(probs[:, 1:], torch.full((3, 4), 0.0025))
    assert softmax_prior_bias(5, 0.01)[0].item() == pytest.approx(math.log(4 * 0.99 / 0.01))


def test_shared_tower_and_class_specific_shapes():
    head = RetinaNetHead(16, num_anchors=9, num_logits=4, box_dim=16, share_tower=True)
    assert len(head.bbox_tower) == 0
    cls_logits, bbox_pred = head(_features())
    assert [tuple(c.shape) for c in cls_logits] == [(2, 36, 6, 5), (2, 36, 3, 3), (2, 36, 2, 1)]
    assert [tuple(b.shape) for b in bbox_pred] == [(2, 144, 6, 5), (2, 144, 3, 3), (2, 144, 2, 1)]
    logits, deltas = flatten_dense_outputs(cls_logits, bbox_pred, 4, 16)
    assert logits.shape == (2, 9 * (30 + 9 + 2), 4) and deltas.shape == (2, 9 * 41, 16)
    # row (location 1, anchor 2) of level 0 holds channels 2 * 4 .. 2 * 4 + 3 at (y=0, x=1)
    assert torch.equal(logits[1, 1 * 9 + 2], cls_logits[0][1, 8:12, 0, 1])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="box_dim"):
        RetinaNetHead(16, 9, 4, box_dim=6)
    with pytest.raises(ValueError, match="num_logits"):
        RetinaNetHead(16, 9, 0)
    with pytest.raises(ValueError, match="cls_bias"):
        RetinaNetHead(16, 9, 4, cls_bias=torch.zeros(3))
    with pytest.raises(ValueError, match="bbox_pred must have shape"):
        flatten_dense_outputs([torch.zeros(1, 8, 2, 2)], [torch.zeros(1, 4, 2, 2)], 4, 4)
