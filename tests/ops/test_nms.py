"""pydetectron.ops.nms / batched_nms against a float64 reference and torchvision."""

import pytest
import torch
import torchvision
from ops_inputs import clustered_boxes
from ops_reference import batched_nms_reference, nms_reference

from pydetectron.ops import batched_nms, nms


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("plus_one", [False, True])
def test_nms_matches_reference(threshold, plus_one):
    boxes, scores = clustered_boxes(300, seed=1)
    keep = nms(boxes, scores, threshold, plus_one=plus_one)
    assert keep.dtype == torch.int64
    assert torch.equal(keep, nms_reference(boxes, scores, threshold, plus_one))


def test_plus_one_changes_the_result_on_small_boxes():
    # Two 2x2 boxes shifted by 1: IoU 2/6 without +1, 6/12 with +1.
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8], dtype=torch.float64)
    assert nms(boxes, scores, 0.4).tolist() == [0, 1]
    assert nms(boxes, scores, 0.4, plus_one=True).tolist() == [0]


@pytest.mark.parametrize("dtype, suppressed", [(torch.float32, True), (torch.float64, False)])
def test_threshold_compares_as_double(dtype, suppressed):
    """IoU 1/3 rounds up to 0.33333334 in float32, which is > 1/3 (as torchvision's CPU
    kernel compares); in float64 it equals the threshold and the box stays."""
    boxes = torch.tensor([[0, 0, 2, 1], [1, 0, 3, 1]], dtype=dtype)
    scores = torch.tensor([0.9, 0.8], dtype=dtype)
    expected = [0] if suppressed else [0, 1]
    assert nms(boxes, scores, 1 / 3).tolist() == expected
    assert torchvision.ops.nms(boxes, scores, 1 / 3).tolist() == expected
    classes = torch.zeros(2, dtype=torch.int64)
    assert torch.ops.pydetectron.batched_nms(boxes, scores, classes, 1 / 3).tolist() == expected


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 50, 2000])
def test_nms_matches_torchvision(dtype, n):
    boxes, scores = clustered_boxes(n, seed=n, dtype=dtype)
    for threshold in (0.5, 0.7):
        keep = nms(boxes, scores, threshold)
        assert torch.equal(keep, torchvision.ops.nms(boxes, scores, threshold))
        assert torch.all(scores[keep][1:] <= scores[keep][:-1]), "sorted by decreasing score"


def test_nms_non_contiguous_boxes():
    boxes, scores = clustered_boxes(200, seed=3)
    wide = torch.cat([boxes, boxes], dim=1)[:, :4]  # row stride 8
    strided_scores = torch.stack([scores, scores], dim=1)[:, 0]
    assert not wide.is_contiguous() and not strided_scores.is_contiguous()
    assert torch.equal(nms(wide, strided_scores, 0.5), nms(boxes, scores, 0.5))


def test_nms_empty():
    keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64


@pytest.mark.parametrize("n", [40, 600, 1500])
@pytest.mark.parametrize("plus_one", [False, True])
def test_batched_nms_matches_reference(n, plus_one):
    boxes, scores = clustered_boxes(n, seed=n + 7, clusters=max(n // 60, 1))
    idxs = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(n)) * 7 - 3
    keep = batched_nms(boxes, scores, idxs, 0.5, plus_one=plus_one)
    assert torch.equal(keep, batched_nms_reference(boxes, scores, idxs, 0.5, plus_one))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [300, 5000])
def test_batched_nms_matches_torchvision(dtype, n):
    boxes, scores = clustered_boxes(n, seed=n, dtype=dtype)
    idxs = torch.randint(0, 80, (n,), generator=torch.Generator().manual_seed(1))
    keep = batched_nms(boxes, scores, idxs, 0.6)
    assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, idxs, 0.6))


def test_batched_nms_negative_coordinates_and_int32_ids():
    boxes, scores = clustered_boxes(800, seed=11)
    boxes = boxes - 100  # negative coordinates too
    idxs = torch.randint(0, 5, (800,), generator=torch.Generator().manual_seed(2)).to(torch.int32)
    keep = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep, torch.ops.pydetectron.batched_nms(boxes, scores, idxs, 0.5))
    assert torch.equal(keep, batched_nms_reference(boxes, scores, idxs.long(), 0.5))


def test_batched_nms_never_suppresses_across_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    per_class = torch.ops.pydetectron.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5)
    assert per_class.tolist() == [0, 1]


def test_batched_nms_empty():
    keep = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    empty = torch.ops.pydetectron.batched_nms(
        torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5
    )
    assert empty.shape == (0,)
