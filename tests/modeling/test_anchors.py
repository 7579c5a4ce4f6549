"""Anchors against Detectron's published values and torchvision's AnchorGenerator."""

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from pydetectron.modeling.rpn.anchors import AnchorGenerator, detectron_cell_anchors, grid_anchors


def test_detectron_stride4_size32_anchors():
    anchors = detectron_cell_anchors(4, (32,), (0.5, 1.0, 2.0))
    assert anchors.tolist() == [[-22, -10, 25, 13], [-14, -14, 17, 17], [-10, -22, 13, 25]]


def test_py_faster_rcnn_reference_anchors():
    # The well-known output of py-faster-rcnn's generate_anchors() (stride 16, scales 8,16,32),
    # which Detectron's function reproduces.
    expected = [
        [-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199],
        [-56, -56, 71, 71], [-120, -120, 135, 135], [-248, -248, 263, 263],
        [-36, -80, 51, 95], [-80, -168, 95, 183], [-168, -344, 183, 359],
    ]
    assert detectron_cell_anchors(16, (128, 256, 512), (0.5, 1.0, 2.0)).tolist() == expected


def test_detectron_stride16_default_anchors():
    # Detectron's defaults (stride 16, sizes 32..512), hand-computed: e.g. ratio 0.5 gives
    # round(sqrt(512)) = 23 by round(11.5) = 12 (half to even), times 32 / 16.
    anchors = detectron_cell_anchors(16, (32, 64, 128, 256, 512), (0.5, 1.0, 2.0))
    assert anchors.shape == (15, 4)
    assert anchors[0].tolist() == [-15.0, -4.0, 30.0, 19.0]
    assert anchors[5].tolist() == [-8.0, -8.0, 23.0, 23.0]
    assert anchors[10].tolist() == [-3.0, -14.0, 18.0, 29.0]


def test_grid_order_is_location_major():
    cells = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    grid = grid_anchors(cells, 2, 3, stride=8)
    assert grid.shape == (12, 4)
    assert grid[2].tolist() == [8.0, 0.0, 9.0, 1.0]  # second location (x=8), first anchor
    assert grid[7].tolist() == [0.0, 8.0, 2.0, 10.0]  # fourth location (row 1, x=0), second anchor


def test_torchvision_convention_matches_torchvision():
    sizes = ((32,), (64,), (128,))
    ratios = (0.5, 1.0, 2.0)
    strides = (4, 8, 16)
    shapes = [(16, 20), (8, 10), (4, 5)]
    tv = TVAnchorGenerator(sizes, (ratios,) * 3)
    images = ImageList(torch.zeros(1, 3, 64, 80), [(64, 80)])
    feats = [torch.zeros(1, 1, h, w) for h, w in shapes]
    expected = tv(images, feats)[0]
    ours = AnchorGenerator(strides, sizes, ratios, convention="torchvision")(shapes, torch.device("cpu"))
    torch.testing.assert_close(torch.cat(ours), expected)
