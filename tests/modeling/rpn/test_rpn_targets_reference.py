"""The RPN target assigner against a straightforward reference on full-size FPN anchors.

The reference is the assigner as first written (IoU by `box_iou`, a full sort of every
row's random keys, stable so that equal keys go in index order); the fast assigner must
give the same labels and box targets for the same seeds.
"""

import pytest
import torch

from pydetectron.modeling.rpn.anchors import AnchorGenerator
from pydetectron.modeling.rpn.targets import RPNTargetAssigner, iou_gt_by_anchor, sample_random
from pydetectron.structures.boxes import box_iou, encode_boxes


def reference_sample(mask, quota, keys):
    ranked = keys.masked_fill(~mask, 2.0)
    order = ranked.argsort(dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(mask.shape[1]).expand_as(order))
    return mask & (rank < quota[:, None])


def reference_targets(assigner, anchors, im_info, gt_boxes, gt_is_crowd, generator):
    """Labels and box targets as the first version of the assigner computed them."""
    t = assigner.straddle_thresh
    if t < 0:
        inside = torch.ones((im_info.shape[0], anchors.shape[0]), dtype=torch.bool)
    else:
        inside = (
            (anchors[None, :, 0] >= -t)
            & (anchors[None, :, 1] >= -t)
            & (anchors[None, :, 2] < im_info[:, 1:2] + t)
            & (anchors[None, :, 3] < im_info[:, 0:1] + t)
        )
    fg_all, bg_all, matched_all = [], [], []
    for image, boxes in enumerate(gt_boxes):
        if gt_is_crowd is not None:
            boxes = boxes[gt_is_crowd[image] == 0]
        if boxes.shape[0] == 0:
            fg_all.append(torch.zeros_like(inside[image]))
            bg_all.append(inside[image].clone())
            matched_all.append(torch.zeros_like(anchors))
            continue
        iou = box_iou(anchors, boxes, plus_one=assigner.plus_one).masked_fill(~inside[image][:, None], -1.0)
        max_iou, best = iou.max(dim=1)
        gt_best = iou.max(dim=0).values
        reaches = ((iou == gt_best[None, :]) & (gt_best[None, :] > 0)).any(dim=1)
        fg = inside[image] & ((max_iou >= assigner.positive_overlap) | reaches)
        fg_all.append(fg)
        bg_all.append(inside[image] & (max_iou < assigner.negative_overlap) & ~fg)
        matched_all.append(boxes[best])
    fg, bg = torch.stack(fg_all), torch.stack(bg_all)
    keys = torch.rand(fg.shape, generator=generator)
    fg_quota = torch.full((fg.shape[0],), int(assigner.fg_fraction * assigner.batch_size_per_im))
    fg = reference_sample(fg, fg_quota, keys)
    bg = reference_sample(bg, assigner.batch_size_per_im - fg.sum(dim=1), keys)
    labels = torch.full(fg.shape, -1, dtype=torch.int64)
    labels[bg] = 0
    labels[fg] = 1
    targets = torch.zeros(fg.shape + (4,))
    image_index, anchor_index = torch.nonzero(labels == 1, as_tuple=True)
    matched = torch.stack(matched_all)
    targets[image_index, anchor_index] = encode_boxes(
        anchors[anchor_index], matched[image_index, anchor_index], plus_one=assigner.plus_one
    )
    return labels, targets


def fpn_anchors(height: int, width: int, convention: str) -> torch.Tensor:
    generator = AnchorGenerator(
        [4, 8, 16, 32, 64], [(32,), (64,), (128,), (256,), (512,)], (0.5, 1.0, 2.0), convention=convention
    )
    shapes = [((height + s - 1) // s, (width + s - 1) // s) for s in (4, 8, 16, 32, 64)]
    return torch.cat(generator(shapes, torch.device("cpu"), image_size=(height, width)))


def random_gt(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    size = torch.rand(count, 2, generator=generator) * 400 + 8
    corner = torch.rand(count, 2, generator=generator) * (torch.tensor([width, height]) - size).clamp(min=1)
    return torch.cat((corner, corner + size), dim=1).round()  # integer corners make IoU ties


@pytest.mark.parametrize(
    ("convention", "plus_one", "straddle", "batch", "fg_fraction"),
    [("torchvision", False, -1.0, 256, 0.5), ("detectron", True, 0.0, 256, 0.5), ("detectron", True, 0.0, 512, 0.25)],
)
def test_full_size_targets_equal_the_reference(convention, plus_one, straddle, batch, fg_fraction):
    height, width = 800, 1216
    anchors = fpn_anchors(height, width, convention)
    assert anchors.shape[0] > 200_000
    g = torch.Generator().manual_seed(0)
    gt_boxes = [random_gt(12, height, width, g), random_gt(40, height, width, g), torch.zeros(0, 4)]
    gt_boxes[1][5] = gt_boxes[1][4]  # a duplicate gt box
    crowd = [torch.zeros(12), (torch.arange(40) % 7 == 0).float(), torch.zeros(0)]
    im_info = torch.tensor([[height, width, 1.0], [height - 32, width, 1.5], [height, width - 64, 1.0]])
    assigner = RPNTargetAssigner(
        batch_size_per_im=batch, fg_fraction=fg_fraction, straddle_thresh=straddle, plus_one=plus_one
    )
    for seed in (0, 1, 2):
        got = assigner(anchors, im_info, gt_boxes, crowd, generator=torch.Generator().manual_seed(seed))
        labels, targets = reference_targets(
            assigner, anchors, im_info, gt_boxes, crowd, torch.Generator().manual_seed(seed)
        )
        assert torch.equal(got.labels, labels)
        assert torch.equal(got.bbox_targets, targets)
        assert (got.labels[0] == 1).sum() > 0 and (got.labels >= 0).sum(dim=1).tolist() == [batch] * 3


def test_iou_is_box_iou_bit_for_bit():
    g = torch.Generator().manual_seed(3)
    anchors = fpn_anchors(256, 320, "detectron")
    gt = random_gt(9, 256, 320, g)
    for plus_one in (False, True):
        expected = box_iou(anchors, gt, plus_one=plus_one).t()
        assert torch.equal(iou_gt_by_anchor(gt, anchors.t().contiguous(), plus_one), expected)


def test_sample_random_equals_a_stable_sort_with_ties():
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(6, 5000, generator=g) < 0.4
    # coarse keys: many equal values, also at each row's quota boundary
    keys = torch.randint(0, 50, (6, 5000), generator=g).float() / 50
    quota = torch.tensor([0, 1, 37, 256, 1999, 5000])
    expected = reference_sample(mask, quota, keys)
    got = sample_random(mask, quota, keys)
    assert torch.equal(got, expected)
    assert got.sum(dim=1).tolist() == [min(q, int(m)) for q, m in zip(quota.tolist(), mask.sum(dim=1).tolist())]


def test_thread_count_does_not_change_targets_and_is_restored():
    """The assigner runs single-threaded on the CPU; the caller's thread count comes back."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gen = AnchorGenerator([16], [(32, 64)], (0.5, 1.0, 2.0), convention="torchvision")
        anchors = torch.cat(gen([(20, 30)], torch.device("cpu"), image_size=(320, 480)))
        im_info = torch.tensor([[320.0, 480.0, 1.0]])
        gt = [torch.tensor([[10.0, 20.0, 120.0, 200.0], [200.0, 50.0, 400.0, 300.0]])]
        assigner = RPNTargetAssigner(plus_one=False)
        a = assigner(anchors, im_info, gt, generator=torch.Generator().manual_seed(3))
        assert torch.get_num_threads() == 2
        reference = reference_targets(assigner, anchors, im_info, gt, None, torch.Generator().manual_seed(3))
        assert torch.equal(a.labels, reference[0])
        assert (a.labels == 1).sum() > 0
    finally:
        torch.set_num_threads(before)
