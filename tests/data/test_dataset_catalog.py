"""Dataset catalog: Detectron's names and paths, short names, custom registrations."""

from __future__ import annotations

import pytest
from data_test_fixtures import basic_coco, write_dataset

import pydetectron.data.shapes as shapes
from pydetectron.data import (
    SHORT_NAMES,
    dataset_names,
    load_coco_roidb,
    register_dataset,
    register_dataset_from_string,
    register_datasets_from_yaml,
    resolve_dataset,
    short_name,
)
from pydetectron.data.catalog import unregister_dataset

DETECTRON_PATHS = {
    "coco_2014_train": ("coco/coco_train2014", "coco/annotations/instances_train2014.json"),
    "coco_2014_minival": ("coco/coco_val2014", "coco/annotations/instances_minival2014.json"),
    "coco_2014_valminusminival": (
        "coco/coco_val2014",
        "coco/annotations/instances_valminusminival2014.json",
    ),
    "coco_2017_val": ("coco/coco_val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_test-dev": ("coco/coco_test2015", "coco/annotations/image_info_test-dev2017.json"),
    "keypoints_coco_2014_train": (
        "coco/coco_train2014",
        "coco/annotations/person_keypoints_train2014.json",
    ),
    "keypoints_coco_2017_val": (
        "coco/coco_val2017",
        "coco/annotations/person_keypoints_val2017.json",
    ),
}


@pytest.mark.parametrize("name", sorted(DETECTRON_PATHS))
def test_detectron_names_resolve_under_data_dir(tmp_path, name):
    image_dir, json_file = DETECTRON_PATHS[name]
    (tmp_path / json_file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / json_file).write_text("{}")
    resolved = resolve_dataset(name, tmp_path)
    assert resolved.json_file == str(tmp_path / json_file)
    assert resolved.image_dir == str(tmp_path / image_dir)


def test_coco_2017_accepts_official_folder_names(tmp_path):
    json_file = tmp_path / "coco/annotations/instances_train2017.json"
    json_file.parent.mkdir(parents=True)
    json_file.write_text("{}")
    (tmp_path / "coco/train2017").mkdir()
    assert resolve_dataset("coco_2017_train", tmp_path).image_dir == str(
        tmp_path / "coco/train2017"
    )


def test_test2017_uses_the_2015_image_prefix(tmp_path):
    json_file = tmp_path / "coco/annotations/image_info_test2017.json"
    json_file.parent.mkdir(parents=True)
    json_file.write_text("{}")
    assert resolve_dataset("coco_2017_test", tmp_path).image_prefix == "COCO_test2015_"


def test_missing_annotation_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances_val2017.json"):
        resolve_dataset("coco_2017_val", tmp_path)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="coco_2017_train"):
        resolve_dataset("no_such_dataset")


def test_short_names():
    assert short_name("coco2017").train == ("coco_2017_train",)
    assert short_name("coco2017").test == ("coco_2017_val",)
    assert short_name("keypoints_coco2017").num_classes == 2
    assert short_name("shapes").num_classes == len(shapes.SHAPE_CLASSES) + 1
    assert short_name("keypoints_shapes").train == ("keypoints_shapes_train",)
    for entry in SHORT_NAMES.values():
        assert set(entry.train + entry.test) <= set(dataset_names())
    with pytest.raises(KeyError, match="coco2017"):
        short_name("coco")


def test_register_from_string_and_load(tmp_path):
    json_file, image_dir = write_dataset(tmp_path / "mine", basic_coco(), with_images=False)
    name = register_dataset_from_string(f"my_set={json_file}:{image_dir}")
    try:
        assert name == "my_set" and "my_set" in dataset_names()
        resolved = resolve_dataset("my_set", tmp_path / "elsewhere")
        assert resolved.json_file == str(json_file) and resolved.image_dir == str(image_dir)
        roidb = load_coco_roidb(resolved.json_file, resolved.image_dir, name=name)
        assert roidb.info.classes == ["__background__", "cat", "dog"]
    finally:
        unregister_dataset("my_set")
    with pytest.raises(ValueError, match="name=path/to/annotations.json:path/to/images"):
        register_dataset_from_string("my_set=only_a_json.json")


def test_register_from_yaml_relative_to_the_file(tmp_path):
    write_dataset(tmp_path / "sets" / "train", basic_coco(), with_images=False)
    yaml_file = tmp_path / "sets" / "datasets.yaml"
    yaml_file.write_text(
        "DATASETS:\n  yaml_train:\n    image_dir: train/images\n    json: train/annotations.json\n"
    )
    try:
        assert register_datasets_from_yaml(yaml_file) == ["yaml_train"]
        resolved = resolve_dataset("yaml_train")
        assert resolved.json_file == str(tmp_path / "sets/train/annotations.json")
        assert resolved.image_dir == str(tmp_path / "sets/train/images")
    finally:
        unregister_dataset("yaml_train")
    yaml_file.write_text("DATASETS:\n  broken: {image_dir: x}\n")
    with pytest.raises(ValueError, match="'broken' is missing 'json'"):
        register_datasets_from_yaml(yaml_file)


def test_register_refuses_to_shadow_silently(tmp_path):
    with pytest.raises(ValueError, match="already in the catalog"):
        register_dataset("coco_2017_train", tmp_path, tmp_path / "a.json")
