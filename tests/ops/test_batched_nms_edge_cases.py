"""batched_nms with NaN / infinite boxes and class ids beyond float32's integers: the
result is NMS per class (the float64 reference), whatever the number of boxes."""

import pytest
import torch
from ops_inputs import clustered_boxes
from ops_reference import batched_nms_reference

from pydetectron.ops import batched_nms, nms


def classed_boxes(n: int, seed: int, classes: int = 5):
    boxes, scores = clustered_boxes(n, seed=seed, clusters=max(n // 40, 1))
    idxs = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    return boxes, scores, idxs


def per_class_nms(boxes, scores, idxs, threshold):
    """One `nms` call per class, merged by decreasing score."""
    kept = [torch.nonzero(idxs == c).flatten()[nms(boxes[idxs == c], scores[idxs == c], threshold)]
            for c in idxs.unique()]
    kept = torch.cat(kept)
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


@pytest.mark.parametrize("n", [60, 400, 3000])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_box_affects_only_its_own_class(n, bad):
    boxes, scores, idxs = classed_boxes(n, seed=n)
    first_of_class_0 = int(torch.nonzero(idxs == 0)[0])
    boxes[first_of_class_0, 2] = bad
    keep = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep, batched_nms_reference(boxes, scores, idxs, 0.5))
    assert torch.equal(keep, per_class_nms(boxes, scores, idxs, 0.5))
    # The other classes keep exactly what they keep without the bad box.
    clean = batched_nms(boxes[idxs != 0], scores[idxs != 0], idxs[idxs != 0], 0.5)
    others = torch.nonzero(idxs != 0).flatten()[clean]
    assert torch.equal(keep[idxs[keep] != 0], others)


def test_result_does_not_depend_on_the_number_of_boxes():
    """300 boxes with a NaN box, then the same boxes plus 2000 boxes of another class:
    the first 300 keep the same boxes."""
    boxes, scores, idxs = classed_boxes(300, seed=1)
    boxes[5] = float("nan")
    keep_small = batched_nms(boxes, scores, idxs, 0.6)
    extra_boxes, extra_scores = clustered_boxes(2000, seed=2)
    all_boxes = torch.cat([boxes, extra_boxes + 1000])
    all_scores = torch.cat([scores, extra_scores])
    all_idxs = torch.cat([idxs, torch.full((2000,), 7)])
    keep_large = batched_nms(all_boxes, all_scores, all_idxs, 0.6)
    assert torch.equal(keep_large[keep_large < 300], keep_small)


@pytest.mark.parametrize(
    "base, dtype",
    [
        (2**24, torch.int64),
        (2**24, torch.int32),
        (2**31 - 10, torch.int32),
        (2**53 + 1, torch.int64),
        (-(2**40), torch.int64),
    ],
)
@pytest.mark.parametrize("n", [200, 2500])
def test_large_class_ids_stay_apart(base, dtype, n):
    """Ids base, base + 1, ...: float32 (and for 2^53, float64) cannot tell them apart."""
    boxes, scores, idxs = classed_boxes(n, seed=n + 3, classes=3)
    ids = (idxs.to(torch.int64) + base).to(dtype)
    keep = batched_nms(boxes, scores, ids, 0.5)
    assert torch.equal(keep, batched_nms_reference(boxes, scores, idxs, 0.5))
    merged = nms(boxes, scores, 0.5)
    assert len(keep) > len(merged)  # the classes really are apart


def test_equal_boxes_in_far_apart_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 4)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    ids = torch.tensor([2**24, 2**24 + 1, 2**24, 2**24 + 1])
    assert batched_nms(boxes, scores, ids, 0.5).tolist() == [0, 1]
