"""Bad input: errors name the file / record / key; skipping and filtering when asked."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
from data_test_fixtures import basic_coco, keypoint_coco, write_png_dataset

from pydetectron.data import (
    DatasetFormatError,
    ImageReadError,
    RoidbDataset,
    SampleKey,
    combined_roidb_for_training,
    load_coco_roidb,
    parse_coco_json,
    register_dataset,
)
from pydetectron.data.catalog import unregister_dataset

MEANS = (0.0, 0.0, 0.0)


def _broken(edit):
    data = copy.deepcopy(basic_coco())
    edit(data)
    return data


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["annotations"][1].pop("bbox"), r"annotations\[1\] \(id 2\): missing 'bbox'"),
        (
            lambda d: d["annotations"][3].pop("image_id"),
            r"annotations\[3\] \(id 4\): missing 'image_id'",
        ),
        (lambda d: d["images"][0].pop("width"), r"images\[0\] \(id 20\): missing 'width'"),
        (lambda d: d.pop("images"), "missing top-level key 'images'"),
        (lambda d: d.pop("categories"), "missing top-level key 'categories'"),
        (lambda d: d["categories"][1].pop("name"), r"categories\[1\] \(id 3\): missing 'name'"),
        (
            lambda d: d["annotations"][2].update(bbox=[1, 2, 3]),
            r"annotations\[2\] \(id 3\): 'bbox' must be a list of 4 numbers",
        ),
        (
            lambda d: d["annotations"][0].update(category_id=99),
            r"annotations\[0\] \(id 1\): category_id 99 is not in 'categories'",
        ),
        (
            lambda d: d["annotations"][4].update(image_id=5),
            r"annotations\[4\] \(id 5\): image_id 5 is not in 'images'",
        ),
        (
            lambda d: d["annotations"][0].update(segmentation="oops"),
            r"annotations\[0\] \(id 1\): 'segmentation' must be a list of polygons or an RLE",
        ),
        (
            lambda d: d["annotations"][0].update(segmentation=[1, 2, 3, 4, 5, 6]),
            r"annotations\[0\] \(id 1\): 'segmentation' must be a list of polygons",
        ),
        (
            lambda d: d["annotations"][3].update(segmentation={"counts": [1, 2]}),
            r"annotations\[3\] \(id 4\): bad RLE segmentation",
        ),
        (
            lambda d: d["annotations"][1].update(segmentation=[[1, 2, "x", 4, 5, 6]]),
            r"annotations\[1\] \(id 2\): polygon coordinates must be numbers",
        ),
        (lambda d: d["images"].append(dict(d["images"][0])), "images repeat an id"),
        (
            lambda d: d["images"][1].update(height=0),
            r"images\[1\] \(id 10\): width and height must be > 0",
        ),
    ],
)
def test_malformed_json_names_record_and_key(edit, message):
    with pytest.raises(DatasetFormatError, match=message):
        parse_coco_json(_broken(edit), source="x.json")


def test_wrong_keypoint_count_names_the_record():
    data = keypoint_coco()
    data["annotations"][1]["keypoints"] = [1, 2, 2]
    with pytest.raises(DatasetFormatError, match=r"annotations\[1\] \(id 2\): 'keypoints' holds 3"):
        parse_coco_json(data)


def test_unreadable_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetFormatError, match="bad.json: not valid JSON"):
        load_coco_roidb(bad, tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_coco_roidb(tmp_path / "nope.json", tmp_path)


@pytest.fixture
def png_roidb(tmp_path):
    json_file, image_dir = write_png_dataset(tmp_path / "d", basic_coco())
    return load_coco_roidb(json_file, image_dir), image_dir


def test_missing_image_raises_naming_the_file(png_roidb):
    roidb, image_dir = png_roidb
    (image_dir / "b.png").unlink()
    dataset = RoidbDataset(roidb, scales=(50,), max_size=500, pixel_means=MEANS)
    with pytest.raises(ImageReadError, match=r"b\.png' \(file not found\)"):
        dataset[1]


def test_corrupt_or_wrong_size_image(png_roidb):
    roidb, image_dir = png_roidb
    (image_dir / "b.png").write_bytes(b"\x89PNG garbage")
    dataset = RoidbDataset(roidb, scales=(50,), max_size=500, pixel_means=MEANS)
    with pytest.raises(ImageReadError, match=r"b\.png' \(unreadable, corrupt or not an image\)"):
        dataset[1]
    (image_dir / "a.png").replace(image_dir / "empty.png")  # 100 x 80 where 50 x 50 is expected
    message = r"empty\.png' is 80x100 \(HxW\) but its annotations say 50x50"
    with pytest.raises(ImageReadError, match=message):
        dataset[2]


def test_skip_missing_replaces_with_a_warning(png_roidb, caplog):
    roidb, image_dir = png_roidb
    (image_dir / "b.png").unlink()  # b is portrait (60 x 90); so is nothing else
    roidb = roidb.select(np.array([0, 1, 2]))
    dataset = RoidbDataset(roidb, scales=(50,), max_size=500, pixel_means=MEANS, skip_missing=True)
    with caplog.at_level(logging.WARNING):
        sample = dataset[SampleKey(0, 0, 3)]  # readable: no warning
        assert sample["index"] == 0 and not caplog.records
        with pytest.raises(ImageReadError, match="10 replacement images"):
            dataset[SampleKey(1, 0, 3)]  # the only portrait image is missing
    assert "b.png" in caplog.text
    landscape = RoidbDataset(
        roidb.with_flipped(), scales=(50,), max_size=500, pixel_means=MEANS, skip_missing=True
    )
    (image_dir / "a.png").replace(image_dir / "a_moved.png")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        sample = landscape[SampleKey(0, 0, 1)]
    assert "a.png" in caplog.text
    assert landscape.roidb.widths[sample["index"]] >= landscape.roidb.heights[sample["index"]]
    assert sample["image_id"] == 30  # the other landscape image


@pytest.fixture
def registered(tmp_path):
    json_file, image_dir = write_png_dataset(tmp_path / "reg", basic_coco())
    register_dataset("bad_input_set", image_dir, json_file, overwrite=True)
    yield image_dir
    unregister_dataset("bad_input_set")


def test_missing_files_found_before_training(registered, caplog):
    (registered / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 3 images not found, e.g. '.*b\.png'"):
        combined_roidb_for_training("bad_input_set", use_flipped=False, keep_empty=True)
    with caplog.at_level(logging.WARNING):
        roidb = combined_roidb_for_training(
            "bad_input_set", use_flipped=False, keep_empty=True, skip_missing=True
        )
    assert list(roidb.image_ids) == [10, 30] and "b.png" in caplog.text


def test_keep_empty_images_or_not(registered):
    kept = combined_roidb_for_training("bad_input_set", use_flipped=True, keep_empty=True)
    assert sorted(kept.image_ids.tolist()) == [10, 10, 20, 20, 30, 30]
    dropped = combined_roidb_for_training("bad_input_set", use_flipped=True, keep_empty=False)
    assert sorted(dropped.image_ids.tolist()) == [10, 10, 20, 20]


def test_crowd_only_images_count_as_empty(tmp_path):
    data = basic_coco()
    data["annotations"] = [a for a in data["annotations"] if a["id"] == 4]  # the crowd region
    json_file, image_dir = write_png_dataset(tmp_path / "c", data)
    register_dataset("crowd_only_set", image_dir, json_file, overwrite=True)
    try:
        assert len(combined_roidb_for_training("crowd_only_set")) == 0
        assert len(combined_roidb_for_training("crowd_only_set", keep_empty=True)) == 6
    finally:
        unregister_dataset("crowd_only_set")


def test_keypoint_training_drops_images_without_visible_keypoints(tmp_path):
    data = keypoint_coco()
    data["images"].append({"id": 2, "file_name": "q.jpg", "width": 40, "height": 30})
    data["annotations"].append(
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 9, 9], "area": 81.0,
         "iscrowd": 0, "keypoints": [0] * 9}
    )
    json_file, image_dir = write_png_dataset(tmp_path / "k", data)
    register_dataset("kp_filter_set", image_dir, json_file, overwrite=True)
    try:
        roidb = combined_roidb_for_training("kp_filter_set", keypoints_on=True)
        assert roidb.image_ids.tolist() == [1, 1]
        assert len(combined_roidb_for_training("kp_filter_set", keypoints_on=False)) == 4
    finally:
        unregister_dataset("kp_filter_set")


def test_keypoint_training_needs_keypoints(registered):
    with pytest.raises(ValueError, match="'bad_input_set' has none"):
        combined_roidb_for_training("bad_input_set", keypoints_on=True)


def test_mask_training_drops_boxes_without_segmentation(tmp_path):
    data = basic_coco()
    del data["annotations"][0]["segmentation"]
    data["annotations"][2]["segmentation"] = [[50, 10, 60, 10]]  # only an invalid polygon
    parsed = parse_coco_json(data, require_segms=True)
    assert parsed.stats.dropped_no_segmentation == 2
    assert 1 not in parsed.tables.ann_ids and 3 not in parsed.tables.ann_ids
    assert {1, 3} <= set(parse_coco_json(data).tables.ann_ids.tolist())


def test_datasets_with_other_classes_cannot_be_combined(registered, tmp_path):
    data = basic_coco()
    data["categories"] = [{"id": 7, "name": "cat"}, {"id": 3, "name": "horse"}]
    json_file, image_dir = write_png_dataset(tmp_path / "other", data)
    register_dataset("other_classes_set", image_dir, json_file, overwrite=True)
    try:
        with pytest.raises(ValueError, match="'bad_input_set' and 'other_classes_set'"):
            combined_roidb_for_training(["bad_input_set", "other_classes_set"])
    finally:
        unregister_dataset("other_classes_set")
