"""RetinaNet anchors: Detectron's cells and grid (float64 reference) and torchvision's generator."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import _default_anchorgen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retinanet_reference import detectron_cell_anchors, field_of_anchors  # noqa: E402

from pydetectron.modeling.retinanet import retinanet_anchor_generator, retinanet_anchor_sizes  # noqa: E402


def test_sizes_per_octave():
    assert retinanet_anchor_sizes(3) == pytest.approx((32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)))
    assert retinanet_anchor_sizes(3, convention="torchvision") == (32.0, 40.0, 50.0)
    assert retinanet_anchor_sizes(7, convention="torchvision") == (512.0, 645.0, 812.0)
    assert retinanet_anchor_sizes(4, anchor_scale=2, scales_per_octave=2) == pytest.approx((32.0, 32 * 2**0.5))
    with pytest.raises(ValueError, match="convention"):
        retinanet_anchor_sizes(3, convention="caffe")


def test_detectron_anchors_match_reference():
    ratios = (1.0, 2.0, 0.5)  # the 12_2017 baselines' order
    levels = [3, 4, 5, 6, 7]
    generator = retinanet_anchor_generator(levels, 4, 3, ratios, convention="detectron")
    assert generator.num_anchors == [9] * 5
    shapes = [(5, 7), (3, 4), (2, 2), (1, 1), (1, 1)]
    anchors = generator(shapes, torch.device("cpu"), torch.float64)
    for level, (h, w), got in zip(levels, shapes, anchors):
        cells = detectron_cell_anchors(level, 4, 3, ratios)
        expected = field_of_anchors(cells, 2**level, h, w)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-9)
    # hand-computed: stride 8, size 32, ratio 1 -> 32 pixels wide (+1) centred on (3.5, 3.5)
    assert anchors[0][0].tolist() == [-12.0, -12.0, 19.0, 19.0]


def test_torchvision_anchors_match_torchvision():
    theirs = _default_anchorgen()
    ours = retinanet_anchor_generator([3, 4, 5, 6, 7], 4, 3, (0.5, 1.0, 2.0), convention="torchvision")
    image = torch.zeros(1, 3, 224, 320)  # 224 is not a multiple of 64 or 128: strides differ from 2**level
    shapes = [(28, 40), (14, 20), (7, 10), (4, 5), (2, 3)]
    features = [torch.zeros(1, 256, h, w) for h, w in shapes]
    expected = theirs(ImageList(image, [(224, 320)]), features)[0]
    got = torch.cat(ours(shapes, torch.device("cpu"), torch.float32, image_size=(224, 320)))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
