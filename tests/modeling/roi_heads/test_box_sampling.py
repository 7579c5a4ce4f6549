"""Fast R-CNN proposal sampling and losses on small hand-made cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from pydetectron.modeling.roi_heads.box_loss import fast_rcnn_losses
from pydetectron.modeling.roi_heads.box_sampling import FastRCNNSampler

GT = torch.tensor([[0.0, 0.0, 9.0, 9.0], [20.0, 20.0, 39.0, 39.0], [50.0, 50.0, 59.0, 59.0]])
GT_CLASSES = torch.tensor([3, 7, 2])
CROWD = torch.tensor([False, False, True])
PROPOSALS = torch.tensor(
    [
        [0.0, 0.0, 9.0, 8.0],  # IoU 0.9 with gt 0 -> fg class 3
        [22.0, 22.0, 39.0, 39.0],  # IoU 0.81 with gt 1 -> fg class 7
        [5.0, 0.0, 14.0, 9.0],  # IoU 1/3 with gt 0 -> bg
        [50.0, 50.0, 59.0, 59.0],  # only matches the crowd box -> bg (IoU 0 with non-crowd)
        [100.0, 100.0, 109.0, 109.0],  # nothing -> bg
    ]
)


def test_sampling_labels_and_targets():
    sampler = FastRCNNSampler(batch_size_per_image=16, fg_fraction=0.5, plus_one=True)
    sampled = sampler([PROPOSALS], [GT], [GT_CLASSES], [CROWD], generator=torch.Generator().manual_seed(0))
    # foreground: proposals 0 and 1 plus the two non-crowd gt boxes added as proposals
    fg = sampled.labels > 0
    assert int(fg.sum()) == 4
    assert sorted(sampled.labels[fg].tolist()) == [3, 3, 7, 7]
    assert int((sampled.labels == 0).sum()) == 3
    assert sampled.rois[:, 0].eq(0).all()
    # a gt box sampled as its own proposal has zero regression target
    is_gt0 = (sampled.rois[:, 1:] == GT[0]).all(dim=1)
    assert torch.equal(sampled.bbox_targets[is_gt0], torch.zeros(1, 4))
    # proposal 0 (10 x 9, centre y 4.5) vs gt 0 (10 x 10, centre y 5): dy = 10 * 0.5 / 9, dh = 5 log(10/9)
    row = (sampled.rois[:, 1:] == PROPOSALS[0]).all(dim=1)
    expected = torch.tensor([[0.0, 10 * 0.5 / 9, 0.0, 5 * math.log(10 / 9)]])
    torch.testing.assert_close(sampled.bbox_targets[row], expected)
    assert sampled.matched_gt_index[row].item() == 0
    assert set(sampled.matched_gt_index[~fg].tolist()) == {-1}


def test_sampling_caps_fg_and_batch():
    many = PROPOSALS[:1].repeat(50, 1)
    sampler = FastRCNNSampler(batch_size_per_image=8, fg_fraction=0.25)
    sampled = sampler([many], [GT[:1]], [GT_CLASSES[:1]])
    assert int((sampled.labels > 0).sum()) == 2  # 25% of 8
    assert sampled.labels.numel() == 2  # no background candidates at all


def test_sampling_image_without_gt_and_determinism():
    sampler = FastRCNNSampler(batch_size_per_image=3)
    a = sampler([PROPOSALS], [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)],
                generator=torch.Generator().manual_seed(5))
    b = sampler([PROPOSALS], [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)],
                generator=torch.Generator().manual_seed(5))
    assert a.labels.tolist() == [0, 0, 0]
    assert torch.equal(a.rois, b.rois)


def test_losses_hand_computed():
    cls_score = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True)
    bbox_pred = torch.zeros(3, 12)
    bbox_pred[1, 4:8] = torch.tensor([0.5, -2.0, 0.0, 0.0])
    labels = torch.tensor([0, 1, 1])
    targets = torch.zeros(3, 4)
    losses = fast_rcnn_losses(cls_score, bbox_pred, labels, targets)
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(cls_score, labels))
    # smooth L1 beta 1: 0.5 * 0.5^2 + (2 - 0.5) = 1.625 for RoI 1, 0 for RoI 2; / 3 RoIs
    assert losses["loss_bbox"].item() == pytest.approx(1.625 / 3)
    assert losses["accuracy_cls"].item() == pytest.approx(2 / 3)
    losses["loss_cls"].backward()
    assert cls_score.grad is not None


def test_losses_class_agnostic_uses_foreground_column():
    bbox_pred = torch.zeros(2, 8)
    bbox_pred[0, 4] = 3.0
    losses = fast_rcnn_losses(torch.zeros(2, 5), bbox_pred, torch.tensor([4, 0]), torch.zeros(2, 4), True)
    assert losses["loss_bbox"].item() == pytest.approx(2.5 / 2)
