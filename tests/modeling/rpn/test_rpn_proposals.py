"""Proposal generation: hand-made cases, a float64 reference, and torchvision's filter_proposals."""

import math

import numpy as np
import pytest
import torch
from rpn_test_support import reference_nms
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

from pydetectron.modeling.rpn.anchors import AnchorGenerator
from pydetectron.modeling.rpn.proposals import ProposalGenerator


def _one_row_level(anchors, logits, deltas=None):
    """A level of 1 x K locations with one anchor each, from per-box rows."""
    k = len(anchors)
    cls = torch.tensor(logits, dtype=torch.float32).view(1, 1, 1, k)
    d = torch.zeros(k, 4) if deltas is None else torch.tensor(deltas, dtype=torch.float32)
    return cls, d.t().reshape(1, 4, 1, k), torch.tensor(anchors, dtype=torch.float32)


# Image 30 wide, 20 high. Expected fate of each anchor (zero deltas unless said):
HAND_ANCHORS = [
    [0, 0, 9, 9],  # logit 5.0: kept first
    [1, 1, 10, 10],  # 4.0: IoU 81/119 = 0.68 with the first -> suppressed at NMS 0.5
    [20, 5, 35, 15],  # 3.0: clipped to x2 = 29
    [12, 0, 14, 9],  # 2.5: 3 px wide (+1): kept at im_scale 1, too small at im_scale 2
    [25, 18, 40, 30],  # 2.0: clipped to [25, 18, 29, 19], 2 px high: too small
    [-5, 10, 4, 19],  # 1.0: dx = 0.5 moves it by 5 px to [0, 10, 9, 19]
    [15, 12, 24, 19],  # 0.5: isolated, but outside the pre-NMS top 6
]
HAND_LOGITS = [5.0, 4.0, 3.0, 2.5, 2.0, 1.0, 0.5]
HAND_DELTAS = [[0, 0, 0, 0]] * 5 + [[0.5, 0, 0, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("im_scale", "post_nms_top_n", "expected_rows"),
    [(2.0, 0, [0, 2, 5]), (2.0, 2, [0, 2]), (1.0, 0, [0, 2, 3, 5])],
)
def test_hand_made_detectron_case(im_scale, post_nms_top_n, expected_rows):
    cls, deltas, anchors = _one_row_level(HAND_ANCHORS, HAND_LOGITS, HAND_DELTAS)
    generator = ProposalGenerator(
        pre_nms_top_n=6, post_nms_top_n=post_nms_top_n, nms_thresh=0.5, min_size=3, plus_one=True
    )
    im_info = torch.tensor([[20.0, 30.0, im_scale]])
    boxes, scores = generator([cls], [deltas], [anchors], im_info)
    expected_boxes = {0: [0, 0, 9, 9], 2: [20, 5, 29, 15], 3: [12, 0, 14, 9], 5: [0, 10, 9, 19]}
    assert boxes[0].tolist() == [expected_boxes[r] for r in expected_rows]
    expected_scores = torch.sigmoid(torch.tensor([HAND_LOGITS[r] for r in expected_rows]))
    torch.testing.assert_close(scores[0], expected_scores)


def test_nms_runs_within_each_level_and_collect_keeps_the_best_per_image():
    # The same box on two levels survives on both; on one level its copy is suppressed.
    box = [[4, 4, 15, 15], [4, 4, 15, 15]]
    level_a = _one_row_level(box, [3.0, 2.0])
    level_b = _one_row_level(box[:1], [2.5])
    level_c = _one_row_level([[0, 0, 3, 3]], [-1.0])
    generator = ProposalGenerator(pre_nms_top_n=0, post_nms_top_n=2, nms_thresh=0.7, plus_one=True)
    levels = [level_a, level_b, level_c]
    boxes, scores = generator(*[[lv[i] for lv in levels] for i in range(3)], torch.tensor([[32.0, 32.0, 1.0]]))
    assert boxes[0].tolist() == [[4, 4, 15, 15], [4, 4, 15, 15]]
    torch.testing.assert_close(scores[0], torch.sigmoid(torch.tensor([3.0, 2.5])))


def _reference_proposals(cls_logits, bbox_deltas, anchors, im_info, pre, post, nms, min_size):
    """Detectron's GenerateProposals per level + per-image collect, float64 numpy, +1 convention."""
    clip = math.log(1000.0 / 16)
    results = []
    for image in range(im_info.shape[0]):
        height, width, scale = im_info[image].tolist()
        all_boxes, all_scores = [], []
        for cls, deltas, level_anchors in zip(cls_logits, bbox_deltas, anchors):
            s = 1 / (1 + np.exp(-cls[image].numpy().transpose(1, 2, 0).reshape(-1)))
            d = deltas[image].numpy().transpose(1, 2, 0).reshape(-1, 4)
            a = level_anchors.numpy()
            order = np.argsort(-s, kind="stable")[:pre]
            s, d, a = s[order], d[order], a[order]
            w, h = a[:, 2] - a[:, 0] + 1, a[:, 3] - a[:, 1] + 1
            cx, cy = a[:, 0] + 0.5 * w, a[:, 1] + 0.5 * h
            pcx, pcy = d[:, 0] * w + cx, d[:, 1] * h + cy
            pw, ph = np.exp(np.minimum(d[:, 2], clip)) * w, np.exp(np.minimum(d[:, 3], clip)) * h
            b = np.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw - 1, pcy + 0.5 * ph - 1], axis=1)
            b[:, 0::2] = np.clip(b[:, 0::2], 0, width - 1)
            b[:, 1::2] = np.clip(b[:, 1::2], 0, height - 1)
            ws, hs = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
            ms = max(min_size, 1)
            keep = (
                ((b[:, 2] - b[:, 0]) / scale + 1 >= ms)
                & ((b[:, 3] - b[:, 1]) / scale + 1 >= ms)
                & (b[:, 0] + ws / 2 < width)
                & (b[:, 1] + hs / 2 < height)
            )
            b, s = b[keep], s[keep]
            kept = reference_nms(torch.from_numpy(b), torch.from_numpy(s), nms, plus_one=True).numpy()[:post]
            all_boxes.append(b[kept])
            all_scores.append(s[kept])
        b, s = np.concatenate(all_boxes), np.concatenate(all_scores)
        order = np.argsort(-s, kind="stable")[:post]
        results.append((torch.from_numpy(b[order]), torch.from_numpy(s[order])))
    return results


def test_matches_float64_reference_on_random_fpn_outputs():
    torch.manual_seed(0)
    strides, sizes = [16, 8, 4], [(64,), (32,), (16,)]  # coarsest first, as the FPN body gives them
    shapes = [(4, 5), (8, 10), (16, 20)]
    anchors = AnchorGenerator(strides, sizes).forward(shapes, torch.device("cpu"), torch.float64)
    cls = [torch.randn(2, 3, h, w, dtype=torch.float64) for h, w in shapes]
    deltas = [0.5 * torch.randn(2, 12, h, w, dtype=torch.float64) for h, w in shapes]
    im_info = torch.tensor([[64.0, 80.0, 1.0], [50.0, 70.0, 1.6]], dtype=torch.float64)
    generator = ProposalGenerator(pre_nms_top_n=60, post_nms_top_n=40, nms_thresh=0.6, min_size=4, plus_one=True)
    boxes, scores = generator(cls, deltas, anchors, im_info)
    expected = _reference_proposals(cls, deltas, anchors, im_info, 60, 40, 0.6, 4)
    for image, (ref_boxes, ref_scores) in enumerate(expected):
        assert boxes[image].shape == ref_boxes.shape and ref_boxes.shape[0] == 40
        torch.testing.assert_close(boxes[image], ref_boxes, rtol=0, atol=1e-9)
        torch.testing.assert_close(scores[image], ref_scores, rtol=0, atol=1e-12)


def _torchvision_rpn(pre, post, nms, score_thresh):
    tv_anchors = TVAnchorGenerator(sizes=((16,), (32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 3)
    return RegionProposalNetwork(
        tv_anchors,
        RPNHead(8, 3),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_top_n={"training": pre, "testing": pre},
        post_nms_top_n={"training": post, "testing": post},
        nms_thresh=nms,
        score_thresh=score_thresh,
    ).eval()


@pytest.mark.parametrize("score_thresh", [0.0, 0.4])
def test_torchvision_mode_reproduces_filter_proposals(score_thresh):
    torch.manual_seed(3)
    shapes = [(16, 16), (8, 8), (4, 4)]  # finest first, as torchvision orders its levels
    image_sizes = [(60, 64), (64, 45)]
    cls = [torch.randn(2, 3, h, w) for h, w in shapes]
    deltas = [0.3 * torch.randn(2, 12, h, w) for h, w in shapes]

    rpn = _torchvision_rpn(pre=50, post=30, nms=0.7, score_thresh=score_thresh)
    images = ImageList(torch.zeros(2, 3, 64, 64), image_sizes)
    features = [torch.zeros(2, 8, h, w) for h, w in shapes]
    tv_anchors = rpn.anchor_generator(images, features)
    objectness, pred_deltas = concat_box_prediction_layers(cls, deltas)
    decoded = rpn.box_coder.decode(pred_deltas, tv_anchors).view(2, -1, 4)
    num_per_level = [3 * h * w for h, w in shapes]
    tv_boxes, tv_scores = rpn.filter_proposals(decoded, objectness, image_sizes, num_per_level)

    anchors = AnchorGenerator([4, 8, 16], [(16,), (32,), (64,)], convention="torchvision")(shapes, torch.device("cpu"))
    assert torch.equal(torch.cat(anchors), tv_anchors[0])
    generator = ProposalGenerator(
        pre_nms_top_n=50,
        post_nms_top_n=30,
        nms_thresh=0.7,
        min_size=1e-3,
        min_size_rule="torchvision",
        score_thresh=score_thresh,
        plus_one=False,
    )
    im_info = torch.tensor([[h, w, 1.0] for h, w in image_sizes])
    boxes, scores = generator(cls, deltas, anchors, im_info)
    for image in range(2):
        assert tv_boxes[image].shape[0] > 10
        assert torch.equal(boxes[image], tv_boxes[image])
        assert torch.equal(scores[image], tv_scores[image])


def test_bad_im_info_is_reported():
    cls, deltas, anchors = _one_row_level(HAND_ANCHORS, HAND_LOGITS)
    generator = ProposalGenerator(pre_nms_top_n=10, post_nms_top_n=10, nms_thresh=0.7)
    with pytest.raises(ValueError, match="im_info"):
        generator([cls], [deltas], [anchors], torch.tensor([20.0, 30.0, 1.0]))
    with pytest.raises(ValueError, match="min_size_rule"):
        ProposalGenerator(10, 10, 0.7, min_size_rule="other")
