"""FPN level mapping (Detectron and torchvision conventions)."""

import numpy as np
import pytest
import torch
from torchvision.ops.poolers import LevelMapper, initLevelMapper

from pydetectron.modeling.roi_heads.fpn_levels import map_rois_to_fpn_levels


def _square(side: float, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor([[10.0, 20.0, 10.0 + side, 20.0 + side]], dtype=dtype)


@pytest.mark.parametrize(
    ("side_plus_one", "expected"),
    [
        (224, 4),  # canonical size: level 4 (the eps keeps log2(1) from rounding down)
        (223, 3),
        (112, 3),  # half the canonical size: one level down
        (111, 2),
        (448, 5),
        (1000, 5),  # floor(4 + 2.16) = 6, clamped to ROI_MAX_LEVEL 5
        (20, 2),  # clamped to ROI_MIN_LEVEL 2
    ],
)
def test_detectron_hand_values(side_plus_one, expected):
    # Detectron: a box x1..x2 spans x2 - x1 + 1 pixels.
    boxes = _square(side_plus_one - 1)
    assert map_rois_to_fpn_levels(boxes, 2, 5).tolist() == [expected]


def test_torchvision_hand_values_without_plus_one():
    boxes = torch.cat([_square(224), _square(223.9), _square(112), _square(448)])
    levels = map_rois_to_fpn_levels(boxes, 2, 5, plus_one=False, eps_inside_log=False)
    assert levels.tolist() == [4, 3, 3, 5]


def test_eps_placement_changes_the_level_just_below_a_boundary():
    # sqrt(area) / 224 = 0.5 * (1 - 1.5e-6): inside the log the eps lifts it over 0.5
    # (level 3); outside the log it adds 1e-6 < 2.16e-6 (level 2).
    boxes = _square(112.0 * (1 - 1.5e-6), dtype=torch.float64)
    inside = map_rois_to_fpn_levels(boxes, 2, 5, plus_one=False, eps_inside_log=True)
    outside = map_rois_to_fpn_levels(boxes, 2, 5, plus_one=False, eps_inside_log=False)
    assert inside.tolist() == [3] and outside.tolist() == [2]
    assert (LevelMapper(2, 5)([boxes]) + 2).tolist() == [2]


def test_matches_torchvision_level_mapper_on_random_boxes():
    torch.manual_seed(0)
    xy = torch.rand(500, 2) * 300
    wh = torch.rand(500, 2) * 600 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    ours = map_rois_to_fpn_levels(boxes, 2, 5, plus_one=False, eps_inside_log=False)
    theirs = initLevelMapper(2, 5)([boxes[:200], boxes[200:]]) + 2
    assert torch.equal(ours, theirs)
    assert len(set(ours.tolist())) == 4  # every level is exercised


def test_matches_detectron_formula_in_numpy_float32():
    torch.manual_seed(1)
    xy = torch.rand(500, 2) * 300
    wh = torch.rand(500, 2) * 600
    boxes = torch.cat([xy, xy + wh], dim=1)
    b = boxes.numpy()
    s = np.sqrt((b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1))
    expected = np.clip(np.floor(4 + np.log2(s / 224 + 1e-6)), 2, 5)
    assert map_rois_to_fpn_levels(boxes, 2, 5).tolist() == expected.astype(np.int64).tolist()
