"""Box post-processing against torchvision's batched NMS and per-class references."""

import torch
import torchvision

from pydetectron.modeling.roi_heads.box_postprocess import BoxPostProcessor, BoxVoteSettings, SoftNMSSettings
from pydetectron.ops import nms
from pydetectron.structures.nms_variants import box_voting, soft_nms


def random_case(num_rois: int = 60, num_classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_rois, 2, generator=g) * 60
    boxes = torch.cat((xy, xy + 10 + torch.rand(num_rois, 2, generator=g) * 30), dim=1)
    probs = torch.softmax(torch.randn(num_rois, num_classes, generator=g) * 2, dim=1)
    decoded = boxes.repeat(1, num_classes) + torch.randn(num_rois, 4 * num_classes, generator=g)
    return probs, decoded


def flat_candidates(probs, decoded, thresh):
    boxes = decoded.view(probs.shape[0], -1, 4)[:, 1:].reshape(-1, 4)
    scores = probs[:, 1:].reshape(-1)
    classes = torch.arange(1, probs.shape[1]).repeat(probs.shape[0])
    keep = scores > thresh
    return boxes[keep], scores[keep], classes[keep]


def test_hard_nms_matches_torchvision_batched_nms():
    probs, decoded = random_case()
    post = BoxPostProcessor(4, score_thresh=0.05, nms_thresh=0.5, detections_per_image=10, plus_one=False,
                            keep_ties=False)
    det = post.single_image(probs, decoded)
    boxes, scores, classes = flat_candidates(probs, decoded, 0.05)
    keep = torchvision.ops.batched_nms(boxes, scores, classes, 0.5)[:10]
    assert torch.equal(det.classes, classes[keep])
    torch.testing.assert_close(det.scores, scores[keep])
    torch.testing.assert_close(det.boxes, boxes[keep])


def test_keep_ties_keeps_every_detection_scoring_like_the_last():
    probs = torch.tensor([[0.1, 0.45, 0.45], [0.1, 0.3, 0.6]])
    far = torch.tensor([[0.0, 0.0, 9.0, 9.0] * 3, [50.0, 50.0, 59.0, 59.0] * 3])
    with_ties = BoxPostProcessor(3, detections_per_image=2).single_image(probs, far)
    assert with_ties.scores.tolist() == [0.6000000238418579, 0.44999998807907104, 0.44999998807907104]
    cut = BoxPostProcessor(3, detections_per_image=2, keep_ties=False).single_image(probs, far)
    assert cut.scores.numel() == 2


def test_soft_nms_and_voting_stay_within_each_class():
    probs, decoded = random_case(seed=1)
    post = BoxPostProcessor(
        4, detections_per_image=0, soft_nms_settings=SoftNMSSettings(True, "linear", 0.5, 0.3, 1e-4),
        box_vote_settings=BoxVoteSettings(True, 0.8, "AVG", 1.0),
    )
    det = post.single_image(probs, decoded)
    boxes, scores, classes = flat_candidates(probs, decoded, 0.05)
    for cls in range(1, 4):
        idx = torch.nonzero(classes == cls).squeeze(1)
        keep, new_scores = soft_nms(boxes[idx], scores[idx], 0.5, 0.3, 1e-4, "linear", plus_one=True)
        voted, voted_scores = box_voting(boxes[idx][keep], new_scores, boxes[idx], scores[idx], 0.8, "AVG")
        mine = det.classes == cls
        order = torch.argsort(voted_scores, descending=True, stable=True)
        torch.testing.assert_close(det.scores[mine], voted_scores[order])
        torch.testing.assert_close(det.boxes[mine], voted[order])


def test_hard_nms_with_voting_matches_per_class_voting():
    probs, decoded = random_case(seed=2)
    post = BoxPostProcessor(4, detections_per_image=0, box_vote_settings=BoxVoteSettings(True, 0.7, "ID", 1.0))
    det = post.single_image(probs, decoded)
    boxes, scores, classes = flat_candidates(probs, decoded, 0.05)
    for cls in range(1, 4):
        idx = torch.nonzero(classes == cls).squeeze(1)
        keep = nms(boxes[idx], scores[idx], 0.5, plus_one=True)
        voted, voted_scores = box_voting(boxes[idx][keep], scores[idx][keep], boxes[idx], scores[idx], 0.7)
        mine = det.classes == cls
        torch.testing.assert_close(det.scores[mine], voted_scores)
        torch.testing.assert_close(det.boxes[mine], voted)


def test_voted_boxes_on_the_image_border_stay_inside_it():
    """Voting averages clipped boxes, so a box clipped at 0 or at the far edge stays there exactly."""
    boxes = torch.tensor([[0.0, 0.0, 1199.0, 40.0], [0.0, 2.0, 1199.0, 41.0], [0.0, 1.0, 1199.0, 40.5]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.tensor([79, 79, 80])
    post = BoxPostProcessor(81, detections_per_image=0, box_vote_settings=BoxVoteSettings(True, 0.7, "ID", 1.0))
    voted, _, _ = post._vote(boxes[:1], scores[:1], classes[:1], boxes, scores, classes)
    assert voted[0, 0] == 0 and voted[0, 2] == 1199
    expected_y1 = (0.9 * 0.0 + 0.8 * 2.0) / (0.9 + 0.8)  # the class-80 box does not vote
    torch.testing.assert_close(voted[0, 1], torch.tensor(expected_y1))
