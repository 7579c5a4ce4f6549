"""Box ops against torchvision (no +1) and hand-computed Detectron (+1) values."""

import math

import pytest
import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder

from pydetectron.structures.boxes import (
    box_area,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    flip_boxes,
    nonempty_box_mask,
)


def random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 2 + 1
    return torch.cat((xy, xy + wh), dim=1)


def test_iou_matches_torchvision():
    a, b = random_boxes(30, 0), random_boxes(20, 1)
    torch.testing.assert_close(box_iou(a, b), torchvision.ops.box_iou(a, b))


def test_iou_plus_one_hand_computed():
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    b = torch.tensor([[5.0, 5.0, 14.0, 14.0]])
    # each box is 10x10 = 100 px; overlap 5..9 is 5x5 = 25 px
    assert box_iou(a, b, plus_one=True).item() == pytest.approx(25 / 175)
    assert box_area(a, plus_one=True).item() == 100
    assert box_area(a).item() == 81


def test_encode_decode_match_torchvision_boxcoder():
    weights = (10.0, 10.0, 5.0, 5.0)
    ref, gt = random_boxes(50, 2), random_boxes(50, 3)
    coder = BoxCoder(weights)
    deltas = encode_boxes(ref, gt, weights)
    torch.testing.assert_close(deltas, coder.encode_single(gt, ref))
    decoded = decode_boxes(ref, deltas, weights)
    torch.testing.assert_close(decoded, coder.decode_single(deltas, ref))
    torch.testing.assert_close(decoded, gt)


def test_encode_plus_one_hand_computed():
    ref = torch.tensor([[0.0, 0.0, 9.0, 19.0]], dtype=torch.float64)  # 10 x 20, centre (5, 10)
    gt = torch.tensor([[2.0, 0.0, 21.0, 19.0]], dtype=torch.float64)  # 20 x 20, centre (12, 10)
    deltas = encode_boxes(ref, gt, (10.0, 10.0, 5.0, 5.0), plus_one=True)
    expected = torch.tensor([[10 * 7 / 10, 0.0, 5 * math.log(2.0), 0.0]], dtype=torch.float64)
    torch.testing.assert_close(deltas, expected)
    back = decode_boxes(ref, deltas, (10.0, 10.0, 5.0, 5.0), plus_one=True)
    torch.testing.assert_close(back, gt)


def test_decode_class_specific_and_clamp():
    ref = torch.tensor([[0.0, 0.0, 15.0, 15.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 100.0]])
    out = decode_boxes(ref, deltas, plus_one=True)
    assert out.shape == (1, 8)
    torch.testing.assert_close(out[:, :4], ref)
    # dw clamps at log(1000/16): width becomes 16 * 1000 / 16 = 1000
    width = out[0, 6] - out[0, 4] + 1
    assert width.item() == pytest.approx(1000.0, rel=1e-5)


def test_clip_both_conventions():
    boxes = torch.tensor([[-5.0, -5.0, 120.0, 70.0]])
    torch.testing.assert_close(clip_boxes(boxes, 60, 100, plus_one=True), torch.tensor([[0.0, 0.0, 99.0, 59.0]]))
    torch.testing.assert_close(clip_boxes(boxes, 60, 100), torchvision.ops.clip_boxes_to_image(boxes, (60, 100)))


def test_flip_and_nonempty():
    boxes = torch.tensor([[10.0, 0.0, 19.0, 5.0], [3.0, 3.0, 3.0, 9.0]])
    assert flip_boxes(boxes, 100, plus_one=True)[0].tolist() == [80.0, 0.0, 89.0, 5.0]
    assert flip_boxes(flip_boxes(boxes, 100), 100).tolist() == boxes.tolist()
    assert nonempty_box_mask(boxes, plus_one=True).tolist() == [True, True]
    assert nonempty_box_mask(boxes).tolist() == [True, False]
    assert nonempty_box_mask(boxes, min_size=5, plus_one=True).tolist() == [True, False]


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"boxes1 must have shape \[N, 4\]"):
        box_iou(torch.zeros(3, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="deltas must have shape"):
        decode_boxes(torch.zeros(2, 4), torch.zeros(3, 4))
