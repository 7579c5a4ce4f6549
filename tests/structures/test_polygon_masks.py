"""Polygon masks rasterised inside RoIs: hand-computed cells, pycocotools, unions, batching."""

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from pydetectron.structures.polygon_masks import PolygonMasks


def detectron_mask_in_box(polygons, box, size):
    """Detectron's polys_to_mask_wrt_box, written with pycocotools (the reference)."""
    w = max(box[2] - box[0], 1.0)
    h = max(box[3] - box[1], 1.0)
    scaled = []
    for poly in polygons:
        p = np.array(poly, dtype=np.float64)
        p[0::2] = (p[0::2] - box[0]) * size / w
        p[1::2] = (p[1::2] - box[1]) * size / h
        scaled.append(p)
    rles = mask_util.frPyObjects(scaled, size, size)
    return (mask_util.decode(rles).sum(axis=2) > 0).astype(np.float32)


def test_square_fills_the_cells_whose_centres_it_covers():
    masks = PolygonMasks.from_lists([[np.array([2, 2, 6, 2, 6, 6, 2, 6], np.float32)]])
    got = masks.rasterize_in_boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), torch.tensor([0]), 8)[0]
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 1
    assert torch.equal(got, expected)
    # the same square seen through a box twice as large: 4 cells of 8 cover it
    got = masks.rasterize_in_boxes(torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.tensor([0]), 8)[0]
    expected = torch.zeros(8, 8)
    expected[1:3, 1:3] = 1
    assert torch.equal(got, expected)


def test_parts_are_united_and_instances_kept_apart():
    left = np.array([0, 0, 4, 0, 4, 8, 0, 8], np.float32)
    right = np.array([4, 0, 8, 0, 8, 8, 4, 8], np.float32)
    overlapping = np.array([2, 0, 6, 0, 6, 8, 2, 8], np.float32)
    masks = PolygonMasks.from_lists([[left, right], [overlapping], [], [left]])
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 4)
    got = masks.rasterize_in_boxes(boxes, torch.tensor([0, 1, 2, 3]), 8)
    assert torch.equal(got[0], torch.ones(8, 8))  # union of two halves
    assert got[1].sum() == 32 and got[1][:, 2:6].sum() == 32
    assert got[2].sum() == 0  # an instance without polygons
    assert got[3][:, :4].sum() == 32 and got[3][:, 4:].sum() == 0
    # a self-overlapping instance (the same part twice) stays filled, not cancelled
    twice = PolygonMasks.from_lists([[left, left]])
    assert twice.rasterize_in_boxes(boxes[:1], torch.tensor([0]), 8)[0][:, :4].sum() == 32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools_rasterisation_of_random_polygons(seed):
    rng = np.random.default_rng(seed)
    instances, boxes, index = [], [], []
    for i in range(6):
        parts = []
        for _ in range(int(rng.integers(1, 3))):
            centre = rng.uniform(20, 80, size=2)
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 9))))
            radii = rng.uniform(5, 25, size=angles.size)
            xy = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
            parts.append(xy.reshape(-1).astype(np.float32))
        instances.append(parts)
        for _ in range(2):
            x1, y1 = rng.uniform(0, 50, size=2)
            boxes.append([x1, y1, x1 + rng.uniform(10, 60), y1 + rng.uniform(10, 60)])
            index.append(i)
    masks = PolygonMasks.from_lists(instances)
    boxes_t = torch.tensor(boxes, dtype=torch.float32)
    got = masks.rasterize_in_boxes(boxes_t, torch.tensor(index), 28).numpy()
    expected = np.stack([detectron_mask_in_box(instances[i], b, 28) for b, i in zip(boxes, index)])
    # pycocotools decides cells on the polygon's edge by its own sub-pixel rule: only edge cells differ
    differ = (got != expected).sum(axis=(1, 2))
    perimeter = expected.reshape(len(expected), -1).sum(axis=1) ** 0.5 * 4 + 4
    assert (differ <= 0.25 * perimeter).all(), (differ, perimeter)
    agreement = (got == expected).mean()
    assert agreement > 0.97, agreement


def test_empty_inputs_and_device_move():
    masks = PolygonMasks.from_lists([])
    assert len(masks) == 0
    out = masks.to("cpu").rasterize_in_boxes(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64), 14)
    assert out.shape == (0, 14, 14)
    tiny = PolygonMasks.from_lists([[np.array([0, 0, 1, 1], np.float32)]])  # under 3 vertices: dropped
    assert tiny.vertices.shape == (0, 2)
    assert tiny.rasterize_in_boxes(torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([0]), 4).sum() == 0
