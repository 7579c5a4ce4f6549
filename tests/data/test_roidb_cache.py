"""The roidb cache: written without pickle, reused, and invalidated by json or params changes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from data_test_fixtures import basic_coco, keypoint_coco, write_dataset

import pydetectron.data.json_dataset as json_dataset
from pydetectron.data import load_coco_roidb


def _fail_parse(*args, **kwargs):
    raise AssertionError("the json was parsed although a valid cache exists")


def _assert_same_roidb(a, b):
    assert len(a) == len(b)
    assert a.info.classes == b.info.classes
    assert a.info.json_category_ids == b.info.json_category_ids
    assert a.info.keypoint_names == b.info.keypoint_names
    for i in range(len(a)):
        ea, eb = a[i], b[i]
        for key in ("boxes", "gt_classes", "is_crowd", "seg_areas", "ann_ids", "gt_overlaps"):
            np.testing.assert_array_equal(ea[key], eb[key])
        assert ea["image"] == eb["image"]
        assert len(ea["segms"]) == len(eb["segms"])
        for sa, sb in zip(ea["segms"], eb["segms"]):
            if isinstance(sa, dict):
                assert sa == sb
            else:
                for pa, pb in zip(sa, sb):
                    np.testing.assert_array_equal(pa, pb)
        if "gt_keypoints" in ea:
            np.testing.assert_array_equal(ea["gt_keypoints"], eb["gt_keypoints"])


@pytest.mark.parametrize("make", [basic_coco, keypoint_coco])
def test_cache_round_trip_without_pickle(tmp_path, monkeypatch, make):
    json_file, image_dir = write_dataset(tmp_path / "d", make(), with_images=False)
    cache = tmp_path / "cache"
    built = load_coco_roidb(json_file, image_dir, cache_dir=cache)
    files = sorted(p.suffix for p in cache.iterdir())
    assert files == [".json", ".npz"]
    npz = next(cache.glob("*.npz"))
    with np.load(npz, allow_pickle=False) as arrays:  # no object arrays anywhere
        assert all(arrays[k].dtype != object for k in arrays.files)
    monkeypatch.setattr(json_dataset, "parse_coco_json", _fail_parse)
    cached = load_coco_roidb(json_file, image_dir, cache_dir=cache)
    _assert_same_roidb(built, cached)
    _assert_same_roidb(built.with_flipped(), cached.with_flipped())


def test_changed_json_invalidates_cache(tmp_path):
    data = basic_coco()
    json_file, image_dir = write_dataset(tmp_path / "d", data, with_images=False)
    cache = tmp_path / "cache"
    first = load_coco_roidb(json_file, image_dir, cache_dir=cache)
    data["annotations"][0]["bbox"] = [0, 0, 5, 5]
    json_file.write_text(json.dumps(data))
    stat = os.stat(json_file)
    os.utime(json_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = load_coco_roidb(json_file, image_dir, cache_dir=cache)
    np.testing.assert_array_equal(first[0]["boxes"][0], [10, 20, 39, 59])
    np.testing.assert_array_equal(second[0]["boxes"][0], [0, 0, 4, 4])
    assert len(list(cache.glob("*.npz"))) == 1  # the stale entry was removed


def test_cleaning_params_are_part_of_the_key(tmp_path, monkeypatch):
    json_file, image_dir = write_dataset(tmp_path / "d", basic_coco(), with_images=False)
    cache = tmp_path / "cache"
    load_coco_roidb(json_file, image_dir, cache_dir=cache)
    small = load_coco_roidb(json_file, image_dir, cache_dir=cache, gt_min_area=17)
    np.testing.assert_array_equal(small[1]["ann_ids"], [10])
    no_plus_one = load_coco_roidb(json_file, image_dir, cache_dir=cache, plus_one=False)
    np.testing.assert_array_equal(no_plus_one[0]["boxes"][0], [10, 20, 40, 60])


def test_two_jsons_with_the_same_name_keep_separate_caches(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    a_json, a_dir = write_dataset(tmp_path / "a", basic_coco(), with_images=False)
    b_json, b_dir = write_dataset(tmp_path / "b", keypoint_coco(), with_images=False)
    a = load_coco_roidb(a_json, a_dir, cache_dir=cache)
    b = load_coco_roidb(b_json, b_dir, cache_dir=cache)
    monkeypatch.setattr(json_dataset, "parse_coco_json", _fail_parse)
    _assert_same_roidb(a, load_coco_roidb(a_json, a_dir, cache_dir=cache))
    _assert_same_roidb(b, load_coco_roidb(b_json, b_dir, cache_dir=cache))


def test_corrupt_cache_is_rebuilt(tmp_path):
    json_file, image_dir = write_dataset(tmp_path / "d", basic_coco(), with_images=False)
    cache = tmp_path / "cache"
    built = load_coco_roidb(json_file, image_dir, cache_dir=cache)
    next(cache.glob("*.npz")).write_bytes(b"not a zip file")
    _assert_same_roidb(built, load_coco_roidb(json_file, image_dir, cache_dir=cache))
