"""RetinaNet anchor assignment: Detectron's labels (float64 reference) and torchvision's Matcher."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retinanet_reference import detectron_retinanet_labels  # noqa: E402

from pydetectron.modeling.retinanet import RetinaNetTargetAssigner, retinanet_anchor_generator  # noqa: E402
from pydetectron.structures.boxes import box_iou as our_iou  # noqa: E402
from pydetectron.structures.ground_truth import GroundTruth  # noqa: E402

GT_BOXES = np.array(
    [
        [10.0, 12.0, 52.0, 60.0],  # well covered: IoU >= 0.5 anchors
        [70.0, 8.0, 83.0, 20.0],  # small: its best anchor IoU is below 0.4
        [30.0, 66.0, 70.0, 90.0],
        [88.0, 40.0, 126.0, 95.0],
        [60.0, 70.0, 81.0, 91.0],  # its best anchor IoU is in [0.4, 0.5): a low-quality match
    ]
)
GT_CLASSES = np.array([3, 1, 4, 2, 1])


def anchors(convention="detectron"):
    generator = retinanet_anchor_generator([3, 4], 4, 3, (1.0, 2.0, 0.5), convention=convention)
    return torch.cat(generator([(12, 16), (6, 8)], torch.device("cpu"), torch.float64, image_size=(96, 128)))


def test_detectron_labels_match_reference():
    grid = anchors()
    iou = our_iou(grid, torch.from_numpy(GT_BOXES), plus_one=True)
    best_per_gt = iou.max(dim=0).values
    assert best_per_gt[1] < 0.4 and 0.4 <= best_per_gt[4] < 0.5  # both low-quality cases are exercised
    crowd = GroundTruth(
        torch.from_numpy(np.vstack([GT_BOXES, [[0.0, 0.0, 127.0, 95.0]]])).float(),
        torch.from_numpy(np.append(GT_CLASSES, 5)),
        is_crowd=torch.tensor([False] * len(GT_BOXES) + [True]),
    )
    empty = GroundTruth(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    targets = RetinaNetTargetAssigner(0.5, 0.4, "unless_background", plus_one=True)(grid, [crowd, empty])
    labels, bbox_targets, num_fg = detectron_retinanet_labels(grid.numpy(), GT_BOXES, GT_CLASSES)
    np.testing.assert_array_equal(targets.labels[0].numpy(), labels)
    fg = labels > 0
    np.testing.assert_allclose(targets.bbox_targets[0].numpy()[fg], bbox_targets[fg], rtol=0, atol=1e-12)
    assert torch.all(targets.bbox_targets[0][~torch.from_numpy(fg)] == 0)
    assert targets.num_foreground[0].item() == num_fg > fg.sum()  # taken-back low-quality anchors still count
    assert torch.all(targets.labels[1] == 0) and targets.num_foreground[1].item() == 0


@pytest.mark.parametrize("mode", ["always", "none"])
def test_torchvision_labels_match_matcher(mode):
    grid = anchors("torchvision").float()
    boxes = torch.from_numpy(GT_BOXES).float()
    classes = torch.from_numpy(GT_CLASSES)
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=mode == "always")
    iou = box_iou(boxes, grid)
    assert iou.max(dim=1).values[1] < 0.4 and 0.4 <= iou.max(dim=1).values[4] < 0.5
    matched = matcher(iou)
    expected = torch.where(matched >= 0, classes[matched.clamp(min=0)], torch.where(matched == -1, 0, -1))
    assigner = RetinaNetTargetAssigner(0.5, 0.4, mode, plus_one=False)
    targets = assigner(grid, [GroundTruth(boxes, classes)])
    assert torch.equal(targets.labels[0], expected)
    assert targets.num_foreground[0].item() == (matched >= 0).sum().item()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="low_quality_matches"):
        RetinaNetTargetAssigner(low_quality_matches="sometimes")
    with pytest.raises(ValueError, match="negative_overlap"):
        RetinaNetTargetAssigner(0.4, 0.5)
    assigner = RetinaNetTargetAssigner()
    with pytest.raises(TypeError, match=r"targets\[0\] must be a GroundTruth"):
        assigner(anchors(), [{"boxes": torch.zeros(0, 4)}])
    with pytest.raises(ValueError, match="1-based"):
        assigner(anchors(), [GroundTruth(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]))])
