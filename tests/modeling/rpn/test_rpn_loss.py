"""RPN losses against hand-computed values and torchvision's compute_loss."""

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from pydetectron.modeling.rpn.loss import RPNLoss

LABELS = torch.tensor([[1, 0, -1], [0, 0, 1]])
LOGITS = torch.tensor([[0.5, -1.0, 3.0], [2.0, 7.0, -0.5]])
DELTAS = torch.tensor(
    [
        [[0.05, -0.2, 0.0, 1.0], [9.0, 9.0, 9.0, 9.0], [5.0, 5.0, 5.0, 5.0]],
        [[3.0, 3.0, 3.0, 3.0], [-4.0, 4.0, 4.0, 4.0], [0.1, 0.0, 0.2, -0.5]],
    ]
)
TARGETS = torch.zeros(2, 3, 4)
TARGETS[1, 2, 2] = 0.2


def _bce(x: float, positive: bool) -> float:
    return math.log1p(math.exp(-x)) if positive else math.log1p(math.exp(x))


def _smooth_l1(values, beta=1 / 9) -> float:
    return sum(0.5 * v * v / beta if abs(v) < beta else abs(v) - 0.5 * beta for v in values)


CLS_SUM = _bce(0.5, True) + _bce(-1.0, False) + _bce(2.0, False) + _bce(7.0, False) + _bce(-0.5, True)
BBOX_IMAGE_0 = _smooth_l1([0.05, -0.2, 0.0, 1.0])
BBOX_IMAGE_1 = _smooth_l1([0.1, 0.0, 0.0, -0.5])


@pytest.mark.parametrize(
    ("cls_norm", "bbox_norm", "expected_cls", "expected_bbox"),
    [
        # Detectron single scale: / 5 sampled anchors; bbox per image (2 and 3 sampled), / 2 images
        ("num_sampled", "per_image", CLS_SUM / 5, (BBOX_IMAGE_0 / 2 + BBOX_IMAGE_1 / 3) / 2),
        # Detectron FPN: / (2 images * 8 anchors per image)
        ("batch_size_per_im", "per_image", CLS_SUM / 16, (BBOX_IMAGE_0 / 2 + BBOX_IMAGE_1 / 3) / 2),
        # torchvision: both / 5 sampled anchors of the batch
        ("num_sampled", "num_sampled", CLS_SUM / 5, (BBOX_IMAGE_0 + BBOX_IMAGE_1) / 5),
    ],
)
def test_hand_computed_losses(cls_norm, bbox_norm, expected_cls, expected_bbox):
    loss = RPNLoss(cls_normalization=cls_norm, bbox_normalization=bbox_norm, batch_size_per_im=8)
    loss_cls, loss_bbox = loss(LOGITS, DELTAS, LABELS, TARGETS)
    assert loss_cls.item() == pytest.approx(expected_cls, rel=1e-6)
    assert loss_bbox.item() == pytest.approx(expected_bbox, rel=1e-6)


def test_gradients_reach_only_sampled_anchors():
    logits = LOGITS.clone().requires_grad_(True)
    deltas = DELTAS.clone().requires_grad_(True)
    loss_cls, loss_bbox = RPNLoss()(logits, deltas, LABELS, TARGETS)
    (loss_cls + loss_bbox).backward()
    assert torch.equal(logits.grad != 0, LABELS >= 0)
    assert torch.equal(deltas.grad.abs().sum(dim=2) != 0, LABELS == 1)


def test_empty_sample_gives_zero_losses():
    labels = torch.full((1, 3), -1)
    loss_cls, loss_bbox = RPNLoss()(LOGITS[:1], DELTAS[:1], labels, TARGETS[:1])
    assert loss_cls.item() == 0.0 and loss_bbox.item() == 0.0


def test_torchvision_normalization_matches_compute_loss():
    torch.manual_seed(0)
    rpn = RegionProposalNetwork(
        TVAnchorGenerator(),
        RPNHead(4, 3),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=10_000,  # every labelled anchor is sampled
        positive_fraction=1.0,
        pre_nms_top_n={"training": 10, "testing": 10},
        post_nms_top_n={"training": 10, "testing": 10},
        nms_thresh=0.7,
    )
    labels = torch.randint(-1, 2, (2, 50))
    logits, deltas, targets = torch.randn(2, 50), torch.randn(2, 50, 4), torch.randn(2, 50, 4)
    tv_cls, tv_bbox = rpn.compute_loss(
        logits.reshape(-1, 1), deltas.reshape(-1, 4), list(labels.float()), list(targets)
    )
    ours = RPNLoss(cls_normalization="num_sampled", bbox_normalization="num_sampled")
    loss_cls, loss_bbox = ours(logits, deltas, labels, targets)
    torch.testing.assert_close(loss_cls, tv_cls)
    torch.testing.assert_close(loss_bbox, tv_bbox)


def test_bad_settings_and_shapes_are_reported():
    with pytest.raises(ValueError, match="cls_normalization"):
        RPNLoss(cls_normalization="mean")
    with pytest.raises(ValueError, match="cls_logits"):
        RPNLoss()(LOGITS[:, :2], DELTAS, LABELS, TARGETS)
