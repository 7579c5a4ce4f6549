"""COCO json -> roidb: fields, cleaning, class ids, crowd, RLE, keypoints, flipping."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from data_test_fixtures import CROWD_RLE, basic_coco, keypoint_coco, square, write_dataset
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from pydetectron.data import Roidb, load_coco_roidb, parse_coco_json


@pytest.fixture
def basic_roidb(tmp_path):
    json_file, image_dir = write_dataset(tmp_path / "basic", basic_coco(), with_images=False)
    return load_coco_roidb(json_file, image_dir, name="basic")


def test_images_sorted_by_id_with_paths(basic_roidb, tmp_path):
    assert list(basic_roidb.image_ids) == [10, 20, 30]
    assert list(basic_roidb.widths) == [100, 60, 50]
    assert list(basic_roidb.heights) == [80, 90, 50]
    assert basic_roidb.image_path(1) == str(tmp_path / "basic" / "images" / "b.jpg")
    assert not basic_roidb.entry_flipped.any()


def test_class_ids_map_to_contiguous_in_json_order(basic_roidb):
    info = basic_roidb.info
    assert info.classes == ["__background__", "cat", "dog"]
    assert info.json_category_id_to_contiguous_id == {7: 1, 3: 2}
    assert info.contiguous_category_id_to_json_id == {1: 7, 2: 3}


def test_boxes_cleaned_as_detectron(basic_roidb):
    e = basic_roidb[0]  # image 10, 100 x 80
    # xywh -> xyxy with x2 = x1 + w - 1, clipped to (W - 1, H - 1); degenerate/zero-area dropped
    expected = [[10, 20, 39, 59], [90, 70, 99, 79], [50, 10, 69, 19], [2, 45, 3, 54]]
    np.testing.assert_array_equal(e["boxes"], np.array(expected, np.float32))
    assert e["boxes"].dtype == np.float32
    np.testing.assert_array_equal(e["gt_classes"], [1, 2, 2, 1])
    np.testing.assert_array_equal(e["is_crowd"], [False, False, False, True])
    np.testing.assert_array_equal(e["seg_areas"], [1200, 100, 150, 20])
    np.testing.assert_array_equal(e["ann_ids"], [1, 2, 3, 4])
    e = basic_roidb[1]  # image 20: the small box stays, ignore/outside dropped
    expected = np.array([[1, 2, 4, 5], [20, 30, 29.5, 49]], np.float32)
    np.testing.assert_array_equal(e["boxes"], expected)
    np.testing.assert_array_equal(e["ann_ids"], [7, 10])
    assert basic_roidb[2]["boxes"].shape == (0, 4)


def test_crowd_overlaps_are_minus_one(basic_roidb):
    e = basic_roidb[0]
    expected = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 1], [-1, -1, -1]], np.float32)
    np.testing.assert_array_equal(e["gt_overlaps"], expected)
    np.testing.assert_array_equal(e["max_overlaps"], [1, 1, 1, -1])
    np.testing.assert_array_equal(e["max_classes"], [1, 2, 2, 0])


def test_segms_polygons_and_rle(basic_roidb):
    segms = basic_roidb[0]["segms"]
    np.testing.assert_allclose(segms[0][0], square(10, 20, 30))
    assert len(segms[2]) == 1  # the 2-point polygon was removed
    np.testing.assert_allclose(segms[2][0], square(50, 10, 10))
    rle = segms[3]
    expected = mask_util.decode(mask_util.frPyObjects(CROWD_RLE, 80, 100))
    np.testing.assert_array_equal(mask_util.decode(rle), expected)
    assert expected[45:55, 2:4].all() and expected.sum() == 20


def test_gt_min_area_drops_small_boxes(tmp_path):
    json_file, image_dir = write_dataset(tmp_path / "d", basic_coco(), with_images=False)
    roidb = load_coco_roidb(json_file, image_dir, gt_min_area=17)
    np.testing.assert_array_equal(roidb[1]["ann_ids"], [10])
    np.testing.assert_array_equal(roidb[0]["ann_ids"], [1, 2, 3, 4])  # area 20 crowd stays


def test_cleaning_counts_are_logged(tmp_path, caplog):
    json_file, image_dir = write_dataset(tmp_path / "d", basic_coco(), with_images=False)
    with caplog.at_level(logging.INFO, logger="pydetectron.data"):
        load_coco_roidb(json_file, image_dir)
    text = caplog.text
    assert "kept 6/10 annotations (1 crowd)" in text
    assert "3 degenerate boxes" in text and "1 marked ignore" in text
    assert "clipped 1 boxes" in text and "removed 1 polygons" in text


def test_torchvision_box_convention(tmp_path):
    json_file, image_dir = write_dataset(tmp_path / "d", basic_coco(), with_images=False)
    roidb = load_coco_roidb(json_file, image_dir, plus_one=False)
    e = roidb[0]
    # x2 = x1 + w, clipped to (W, H); the w = 0.5 box is now valid
    np.testing.assert_array_equal(e["boxes"][:2], np.array([[10, 20, 40, 60], [90, 70, 100, 80]]))
    assert 5 in e["ann_ids"]
    flipped = roidb.with_flipped()[len(roidb)]
    np.testing.assert_array_equal(flipped["boxes"][0], [100 - 40, 20, 100 - 10, 60])


def test_flipped_entries_mirror_boxes_polygons_rle(basic_roidb):
    both = basic_roidb.with_flipped()
    assert len(both) == 6
    np.testing.assert_array_equal(both.entry_flipped, [False] * 3 + [True] * 3)
    orig, flip = both[0], both[3]
    assert flip["flipped"] and flip["id"] == orig["id"] and flip["image"] == orig["image"]
    width = 100
    expected = orig["boxes"].copy()
    expected[:, 0] = width - orig["boxes"][:, 2] - 1
    expected[:, 2] = width - orig["boxes"][:, 0] - 1
    np.testing.assert_array_equal(flip["boxes"], expected)
    np.testing.assert_array_equal(flip["boxes"][0], [60, 20, 89, 59])
    poly = np.array(square(10, 20, 30), np.float32)
    poly[0::2] = width - 1 - poly[0::2]
    np.testing.assert_allclose(flip["segms"][0][0], poly)
    np.testing.assert_array_equal(
        mask_util.decode(flip["segms"][3]), mask_util.decode(orig["segms"][3])[:, ::-1]
    )
    np.testing.assert_array_equal(flip["gt_classes"], orig["gt_classes"])


def test_keypoints_layout_and_flip(tmp_path):
    json_file, image_dir = write_dataset(tmp_path / "k", keypoint_coco(), with_images=False)
    roidb = load_coco_roidb(json_file, image_dir)
    info = roidb.info
    assert info.keypoint_names == ["nose", "left_eye", "right_eye"]
    assert info.keypoint_flip_map == {"left_eye": "right_eye"}
    e = roidb[0]
    expected = np.array([[[10, 8, 0], [12, 9, 0], [2, 1, 0]], [[0] * 3, [0] * 3, [0] * 3]])
    np.testing.assert_array_equal(e["gt_keypoints"], expected)  # [N, 3 (x, y, v), K]
    assert e["has_visible_keypoints"]
    f = roidb.with_flipped()[1]
    # left/right swap, x -> W - 1 - x, unlabeled keypoints keep x = 0
    np.testing.assert_array_equal(f["gt_keypoints"][0], [[29, 0, 31], [12, 0, 9], [2, 0, 1]])
    np.testing.assert_array_equal(f["gt_keypoints"][1], np.zeros((3, 3)))
    np.testing.assert_array_equal(roidb.has_visible_keypoints(), [True])


def _detectron_reference(json_file, gt_min_area):
    """Detectron's per-annotation loop over pycocotools, float64 (the reference)."""
    coco = COCO(str(json_file))
    cat_ids = coco.getCatIds()
    to_contiguous = {c: i + 1 for i, c in enumerate(cat_ids)}
    out = {}
    for image_id in sorted(coco.getImgIds()):
        im = coco.loadImgs(image_id)[0]
        rows = []
        for obj in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)):
            if obj["area"] < gt_min_area or obj.get("ignore", 0) == 1:
                continue
            x, y, w, h = obj["bbox"]
            x1, y1 = x, y
            x2, y2 = x1 + max(0.0, w - 1.0), y1 + max(0.0, h - 1.0)
            x1, x2 = (min(im["width"] - 1.0, max(0.0, v)) for v in (x1, x2))
            y1, y2 = (min(im["height"] - 1.0, max(0.0, v)) for v in (y1, y2))
            if obj["area"] > 0 and x2 > x1 and y2 > y1:
                rows.append([x1, y1, x2, y2, to_contiguous[obj["category_id"]], obj["iscrowd"],
                             obj["area"]])
        out[image_id] = np.array(rows, dtype=np.float64).reshape(-1, 7)
    return out


def _random_coco(rng, num_images=25, num_anns=300):
    images = [
        {"id": int(i), "file_name": f"{i}.jpg", "width": int(rng.integers(20, 200)),
         "height": int(rng.integers(20, 200))}
        for i in rng.permutation(np.arange(1, num_images + 1) * 3)
    ]
    cats = [{"id": int(c), "name": f"c{c}"} for c in (12, 5, 40, 8)]
    anns = []
    for k in range(num_anns):
        im = images[int(rng.integers(num_images))]
        x, y = rng.uniform(-20, im["width"] + 5), rng.uniform(-20, im["height"] + 5)
        w, h = rng.uniform(0, 60), rng.uniform(0, 60)
        anns.append({
            "id": 1000 + k, "image_id": im["id"], "category_id": cats[int(rng.integers(4))]["id"],
            "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
            "area": round(float(rng.uniform(0, 1) * w * h), 2),
            "iscrowd": int(rng.random() < 0.1), "ignore": int(rng.random() < 0.05),
            "segmentation": [square(x, y, 5)],
        })
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.mark.parametrize("gt_min_area", [-1, 50])
def test_matches_detectron_loop_over_pycocotools(tmp_path, gt_min_area):
    data = _random_coco(np.random.default_rng(gt_min_area + 2))
    json_file, image_dir = write_dataset(tmp_path / "r", data, with_images=False)
    roidb = load_coco_roidb(json_file, image_dir, gt_min_area=gt_min_area)
    reference = _detectron_reference(json_file, gt_min_area)
    assert list(roidb.image_ids) == sorted(reference)
    for i in range(len(roidb)):
        e, ref = roidb[i], reference[int(roidb.image_ids[i])]
        np.testing.assert_allclose(e["boxes"], ref[:, :4], rtol=0, atol=1e-4)
        np.testing.assert_array_equal(e["gt_classes"], ref[:, 4])
        np.testing.assert_array_equal(e["is_crowd"], ref[:, 5].astype(bool))
        np.testing.assert_allclose(e["seg_areas"], ref[:, 6], rtol=1e-6)


def test_parse_needs_no_files_and_keeps_empty_images():
    parsed = parse_coco_json(json.loads(json.dumps(basic_coco())))
    tables = parsed.tables
    np.testing.assert_array_equal(np.diff(tables.ann_offsets), [4, 2, 0])
    assert tables.keypoints is None and parsed.keypoint_names is None


def test_missing_area_falls_back_to_box_area():
    data = basic_coco()
    del data["annotations"][0]["area"]
    tables = parse_coco_json(data).tables
    assert tables.seg_areas[0] == 30 * 40


def test_concatenated_roidbs_keep_each_datasets_paths_and_rows(tmp_path):
    a = load_coco_roidb(*write_dataset(tmp_path / "a", basic_coco(), with_images=False))
    b = load_coco_roidb(*write_dataset(tmp_path / "b", basic_coco(), with_images=False))
    both = Roidb.concatenate([a.with_flipped(), b])
    assert len(both) == 9 and both.tables.num_images == 6
    assert both.image_path(6) == str(tmp_path / "b" / "images" / "a.jpg")
    assert both.image_path(0) == str(tmp_path / "a" / "images" / "a.jpg")
    for i, j in ((3, 3), (6, 0), (7, 1)):  # (combined entry, its entry in a.with_flipped / b)
        source = a.with_flipped() if i < 6 else b
        expected = source[j]
        got = both[i]
        np.testing.assert_array_equal(got["boxes"], expected["boxes"])
        assert got["flipped"] == expected["flipped"]
        for sg, se in zip(got["segms"], expected["segms"], strict=True):
            if isinstance(se, dict):  # the crowd RLE of image 10
                assert sg == se
            else:
                assert all(np.array_equal(p, q) for p, q in zip(sg, se, strict=True))


def test_image_info_json_without_annotations(tmp_path):
    data = {"images": basic_coco()["images"], "categories": basic_coco()["categories"]}
    roidb = load_coco_roidb(*write_dataset(tmp_path / "info", data, with_images=False))
    assert list(roidb.image_ids) == [10, 20, 30]
    entry = roidb.with_flipped()[4]
    assert entry["boxes"].shape == (0, 4) and entry["gt_overlaps"].shape == (0, 3)
    assert entry["segms"] == [] and entry["flipped"]
    np.testing.assert_array_equal(roidb.num_boxes(), [0, 0, 0])
