"""structures.masks helpers checked against pycocotools and hand-made bitmaps."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_util

from pydetectron.structures.masks import (
    bitmap_to_polygons,
    bitmap_to_rle,
    compress_rle,
    flip_polygons,
    flip_rle,
    polygon_area,
    polygons_to_bitmap,
    rle_to_bitmap,
    scale_polygons,
)


def _bitmap():
    bitmap = np.zeros((20, 30), np.uint8)
    bitmap[3:9, 4:15] = 1
    bitmap[12:18, 20:27] = 1
    return bitmap


def test_rle_round_trip_and_uncompressed_counts():
    bitmap = _bitmap()
    rle = bitmap_to_rle(bitmap)
    np.testing.assert_array_equal(rle_to_bitmap(rle), bitmap)
    flat = bitmap.ravel(order="F").astype(np.int64)
    change = np.flatnonzero(np.diff(flat)) + 1  # column-major runs; the first run is zeros
    runs = np.diff(np.r_[0, change, flat.size]).tolist()
    assert flat[0] == 0
    uncompressed = {"size": [20, 30], "counts": runs}
    assert compress_rle(uncompressed)["counts"] == rle["counts"]
    np.testing.assert_array_equal(rle_to_bitmap(uncompressed), bitmap)


def test_flip_rle_mirrors_columns():
    bitmap = _bitmap()
    np.testing.assert_array_equal(rle_to_bitmap(flip_rle(bitmap_to_rle(bitmap))), bitmap[:, ::-1])


def test_polygons_rasterise_like_pycocotools():
    polys = [np.array([2, 2, 12, 2, 12, 9, 2, 9], np.float32), np.array([15, 3, 25, 3, 20, 15.5])]
    rles = mask_util.frPyObjects([p.tolist() for p in polys], 20, 30)
    ref = mask_util.decode(mask_util.merge(rles))
    np.testing.assert_array_equal(polygons_to_bitmap(polys, 20, 30), ref)
    assert polygons_to_bitmap([], 20, 30).sum() == 0
    assert polygon_area(polys) == 10 * 7 + 0.5 * 10 * 12.5


def test_flip_and_scale_polygons():
    poly = [np.array([2, 3, 10, 3, 10, 8], np.float32)]
    np.testing.assert_array_equal(flip_polygons(poly, 30)[0], [27, 3, 19, 3, 19, 8])
    np.testing.assert_array_equal(flip_polygons(poly, 30, plus_one=False)[0], [28, 3, 20, 3, 20, 8])
    np.testing.assert_array_equal(scale_polygons(poly, 0.5)[0], [1, 1.5, 5, 1.5, 5, 4])


def test_bitmap_outlines_cover_the_parts():
    bitmap = _bitmap()
    polys = bitmap_to_polygons(bitmap)
    assert len(polys) == 2
    redrawn = polygons_to_bitmap(polys, 20, 30)
    assert np.logical_and(redrawn, bitmap).sum() / bitmap.sum() > 0.6
    assert np.logical_and(redrawn, 1 - bitmap).sum() == 0
