"""RPN anchor labels, sampling and box targets on hand-made cases."""

import pytest
import torch

from pydetectron.modeling.rpn.targets import RPNTargetAssigner, sample_random

# Image 100 x 100 (im_info h, w, scale). Anchors and their expected fate (+1 convention):
ANCHORS = torch.tensor(
    [
        [0, 0, 9, 9],  # 0: equals gt 0 -> fg, zero targets
        [0, 0, 19, 19],  # 1: IoU 100/400 = 0.25 with gt 0 -> bg
        [50, 50, 59, 59],  # 2: IoU 64/136 = 0.47 with gt 1, its best (tied) -> fg
        [54, 54, 63, 63],  # 3: the same IoU with gt 1 (the tie) -> fg
        [-1, 0, 8, 9],  # 4: IoU 90/110 = 0.82 with gt 0, but straddles the border by 1 px
        [60, 60, 69, 69],  # 5: equals the crowd box, IoU 4/196 with gt 1 -> bg
        [90, 90, 109, 109],  # 6: crosses the border by 10 px -> ignored
        [30, 0, 39, 9],  # 7: IoU 0 with everything -> bg
        [20, 30, 33, 43],  # 8: IoU 196/400 = 0.49 with gt 2, its best -> fg
        [15, 36, 26, 47],  # 9: IoU 144/400 = 0.36 with gt 2, between thresholds -> ignored
    ],
    dtype=torch.float32,
)
GT = torch.tensor([[0, 0, 9, 9], [52, 52, 61, 61], [15, 30, 34, 49], [60, 60, 69, 69]], dtype=torch.float32)
CROWD = torch.tensor([0, 0, 0, 1])
IM_INFO = torch.tensor([[100.0, 100.0, 1.0]])


def _assigner(**kwargs):
    settings = dict(positive_overlap=0.7, negative_overlap=0.3, fg_fraction=0.5, batch_size_per_im=256)
    settings.update(kwargs)
    return RPNTargetAssigner(**settings)


def test_labels_and_targets_on_hand_made_case():
    targets = _assigner()(ANCHORS, IM_INFO, [GT[:3].clone()])
    assert targets.labels.tolist() == [[1, 0, 1, 1, -1, 0, -1, 0, 1, -1]]
    expected = torch.zeros(1, 10, 4)
    expected[0, 2] = torch.tensor([0.2, 0.2, 0.0, 0.0])  # gt 1 centre 57, anchor centre 55, width 10
    expected[0, 3] = torch.tensor([-0.2, -0.2, 0.0, 0.0])
    # anchor 8: 14 x 14, centre (27, 37); gt 2: 20 x 20, centre (25, 40)
    expected[0, 8] = torch.tensor([-2 / 14, 3 / 14, torch.log(torch.tensor(20 / 14)), torch.log(torch.tensor(20 / 14))])
    torch.testing.assert_close(targets.bbox_targets, expected)


def test_crowd_boxes_take_no_part():
    with_crowd = _assigner()(ANCHORS, IM_INFO, [GT], [CROWD])
    without = _assigner()(ANCHORS, IM_INFO, [GT[:3]])
    assert torch.equal(with_crowd.labels, without.labels)
    # Counted as an ordinary gt box, the crowd box would make anchor 5 foreground.
    as_gt = _assigner()(ANCHORS, IM_INFO, [GT], [torch.zeros(4)])
    assert as_gt.labels[0, 5] == 1


@pytest.mark.parametrize(("straddle", "label_4", "label_6"), [(0, -1, -1), (1, 1, -1), (-1, 1, 0)])
def test_straddle_thresh(straddle, label_4, label_6):
    labels = _assigner(straddle_thresh=straddle)(ANCHORS, IM_INFO, [GT[:3]]).labels
    assert labels[0, 4] == label_4 and labels[0, 6] == label_6


def test_image_without_gt_samples_only_background():
    targets = _assigner()(ANCHORS, IM_INFO, [torch.zeros(0, 4)])
    assert targets.labels.tolist() == [[0, 0, 0, 0, -1, 0, -1, 0, 0, 0]]
    assert torch.count_nonzero(targets.bbox_targets) == 0


def test_gt_out_of_reach_of_every_anchor_makes_no_foreground():
    # Its best IoU is 0: the tie rule must not turn every zero-IoU anchor into foreground.
    far = torch.tensor([[80.0, 0.0, 84.0, 4.0]])
    labels = _assigner()(ANCHORS, IM_INFO, [far]).labels
    assert labels.tolist() == [[0, 0, 0, 0, -1, 0, -1, 0, 0, 0]]


def _grid_anchors(count: int) -> torch.Tensor:
    """`count` 8 x 8 anchors on a grid over a 200 x 200 image."""
    index = torch.arange(count, dtype=torch.float32)
    x, y = (index % 20) * 10, (index // 20) * 10
    return torch.stack([x, y, x + 7, y + 7], dim=1)


def test_sampling_counts_and_seeded_determinism():
    anchors = _grid_anchors(400)
    gt_many = anchors[:60] + 0.0  # 60 anchors with IoU 1 -> 60 fg candidates
    gt_few = anchors[100:102] + 0.0
    im_info = torch.tensor([[200.0, 200.0, 1.0]] * 2)
    assigner = _assigner(batch_size_per_im=32, fg_fraction=0.25)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return assigner(anchors, im_info, [gt_many, gt_few], generator=gen).labels

    labels = run(0)
    assert (labels[0] == 1).sum() == 8 and (labels[0] == 0).sum() == 24
    assert (labels[1] == 1).sum() == 2 and (labels[1] == 0).sum() == 30  # bg fills the batch
    assert bool((labels[0, :60] >= 0).sum() == 8)  # fg drawn among the candidates only
    assert torch.equal(labels, run(0))
    assert not torch.equal(labels, run(1))


def test_sample_random_is_uniform_over_candidates():
    torch.manual_seed(0)
    mask = torch.zeros(4000, 10, dtype=torch.bool)
    mask[:, [1, 3, 4, 8]] = True
    picked = sample_random(mask, torch.full((4000,), 2), torch.rand(4000, 10))
    assert torch.equal(picked.sum(dim=1), torch.full((4000,), 2))
    assert not picked[:, [0, 2, 5, 6, 7, 9]].any()
    frequency = picked[:, [1, 3, 4, 8]].float().mean(dim=0)
    torch.testing.assert_close(frequency, torch.full((4,), 0.5), atol=0.04, rtol=0)


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="gt_boxes has 2 entries"):
        _assigner()(ANCHORS, IM_INFO, [GT, GT])
    with pytest.raises(ValueError, match=r"gt_is_crowd\[0\]"):
        _assigner()(ANCHORS, IM_INFO, [GT], [torch.zeros(2)])
