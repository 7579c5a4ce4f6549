"""Dataset catalog: names -> image folder + COCO json, as Detectron's dataset_catalog.

Built-in names use Detectron's paths under `<data_dir>/coco` (e.g. `coco_2014_train` ->
`coco/coco_train2014` + `coco/annotations/instances_train2014.json`) and the generated
shapes datasets under `<data_dir>/shapes`. Custom COCO-format datasets are added with
`register_dataset`, from a YAML file (`register_datasets_from_yaml`) or from a
`name=json:image_dir` string (`register_dataset_from_string`), without code changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from pydetectron.utils.paths import default_data_dir


@dataclass(frozen=True)
class DatasetEntry:
    """One catalog record. Relative paths are under the data dir; `image_dir` may list
    alternatives separated by `|` (the first that exists wins)."""

    name: str
    image_dir: str
    json_file: str
    image_prefix: str = ""
    generator: str | None = None  # "shapes" or "keypoints_shapes": created on first use


@dataclass(frozen=True)
class ResolvedDataset:
    """A catalog entry with absolute paths."""

    name: str
    image_dir: str
    json_file: str
    image_prefix: str = ""


@dataclass(frozen=True)
class ShortName:
    """A tool-level dataset name (`--dataset coco2017`) and what it stands for."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    num_classes: int


def _coco(split_dir: str, ann: str, prefix: str = "") -> tuple[str, str, str]:
    year = split_dir[-4:]
    part = split_dir[: -len(year)]
    image_dirs = f"coco/coco_{split_dir}"
    if year == "2017":  # also accept the official folder names of the 2017 release
        image_dirs += f"|coco/{part}{year}|coco/images/{part}{year}"
    return image_dirs, f"coco/annotations/{ann}.json", prefix


_COCO = {
    "coco_2014_train": _coco("train2014", "instances_train2014"),
    "coco_2014_val": _coco("val2014", "instances_val2014"),
    "coco_2014_minival": _coco("val2014", "instances_minival2014"),
    "coco_2014_valminusminival": _coco("val2014", "instances_valminusminival2014"),
    "coco_2015_test": _coco("test2015", "image_info_test2015"),
    "coco_2015_test-dev": _coco("test2015", "image_info_test-dev2015"),
    "coco_2017_train": _coco("train2017", "instances_train2017"),
    "coco_2017_val": _coco("val2017", "instances_val2017"),
    "coco_2017_test": _coco("test2015", "image_info_test2017", "COCO_test2015_"),
    "coco_2017_test-dev": _coco("test2015", "image_info_test-dev2017", "COCO_test2015_"),
    "keypoints_coco_2014_train": _coco("train2014", "person_keypoints_train2014"),
    "keypoints_coco_2014_val": _coco("val2014", "person_keypoints_val2014"),
    "keypoints_coco_2014_minival": _coco("val2014", "person_keypoints_minival2014"),
    "keypoints_coco_2014_valminusminival": _coco("val2014", "person_keypoints_valminusminival2014"),
    "keypoints_coco_2015_test": _coco("test2015", "image_info_test2015"),
    "keypoints_coco_2015_test-dev": _coco("test2015", "image_info_test-dev2015"),
    "keypoints_coco_2017_train": _coco("train2017", "person_keypoints_train2017"),
    "keypoints_coco_2017_val": _coco("val2017", "person_keypoints_val2017"),
}

_BUILTIN: dict[str, DatasetEntry] = {
    name: DatasetEntry(name, image_dir, json_file, prefix)
    for name, (image_dir, json_file, prefix) in _COCO.items()
}
for _kind in ("shapes", "keypoints_shapes"):
    for _split in ("train", "val"):
        _name = f"{_kind}_{_split}"
        _BUILTIN[_name] = DatasetEntry(
            _name, f"shapes/{_name}/images", f"shapes/{_name}/annotations.json", "", _kind
        )

_REGISTERED: dict[str, DatasetEntry] = {}

SHORT_NAMES: dict[str, ShortName] = {
    "coco2014": ShortName(
        ("coco_2014_train", "coco_2014_valminusminival"), ("coco_2014_minival",), 81
    ),
    "coco2017": ShortName(("coco_2017_train",), ("coco_2017_val",), 81),
    "keypoints_coco2014": ShortName(
        ("keypoints_coco_2014_train", "keypoints_coco_2014_valminusminival"),
        ("keypoints_coco_2014_minival",),
        2,
    ),
    "keypoints_coco2017": ShortName(
        ("keypoints_coco_2017_train",), ("keypoints_coco_2017_val",), 2
    ),
    "shapes": ShortName(("shapes_train",), ("shapes_val",), 5),
    "keypoints_shapes": ShortName(("keypoints_shapes_train",), ("keypoints_shapes_val",), 2),
}


def dataset_names() -> list[str]:
    """All names the catalog knows (built-in and registered)."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def contains(name: str) -> bool:
    return name in _REGISTERED or name in _BUILTIN


def short_name(name: str) -> ShortName:
    """What a tool-level `--dataset` name stands for."""
    if name not in SHORT_NAMES:
        raise KeyError(f"unknown dataset short name '{name}'; known: {sorted(SHORT_NAMES)}")
    return SHORT_NAMES[name]


def register_dataset(
    name: str,
    image_dir: str | os.PathLike,
    json_file: str | os.PathLike,
    image_prefix: str = "",
    overwrite: bool = False,
) -> None:
    """Add a COCO-format dataset under `name` (paths made absolute now)."""
    if not name or any(c in name for c in "=:"):
        raise ValueError(f"invalid dataset name {name!r} (no '=' or ':')")
    if not overwrite and contains(name):
        existing = _REGISTERED.get(name) or _BUILTIN[name]
        same = (
            os.path.abspath(image_dir) == existing.image_dir
            and os.path.abspath(json_file) == existing.json_file
        )
        if not same:
            raise ValueError(f"dataset '{name}' is already in the catalog; pass overwrite=True")
    _REGISTERED[name] = DatasetEntry(
        name, os.path.abspath(image_dir), os.path.abspath(json_file), image_prefix
    )


def unregister_dataset(name: str) -> None:
    """Remove a registered dataset (built-in names cannot be removed)."""
    _REGISTERED.pop(name, None)


def register_dataset_from_string(spec: str) -> str:
    """Register `name=path/to/annotations.json:path/to/images`; returns the name."""
    name, eq, paths = spec.partition("=")
    json_file, colon, image_dir = paths.partition(":")
    if not (eq and colon and name and json_file and image_dir):
        raise ValueError(
            f"dataset spec {spec!r} must look like name=path/to/annotations.json:path/to/images"
        )
    register_dataset(name.strip(), image_dir.strip(), json_file.strip(), overwrite=True)
    return name.strip()


def register_datasets_from_yaml(path: str | os.PathLike) -> list[str]:
    """Register every dataset of a YAML file; returns their names.

    Format (relative paths are relative to the YAML file)::

        DATASETS:
          my_train: {image_dir: images/train, json: annotations/train.json}
          my_val: {image_dir: images/val, json: annotations/val.json, image_prefix: ''}
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping of dataset names")
    datasets = doc.get("DATASETS", doc)
    if not isinstance(datasets, dict):
        raise ValueError(f"{path}: 'DATASETS' must map names to {{image_dir, json}}")
    names = []
    for name, spec in datasets.items():
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: dataset '{name}' must be a mapping with image_dir and json")
        json_file = spec.get("json", spec.get("json_file", spec.get("annotation_file")))
        image_dir = spec.get("image_dir", spec.get("image_directory"))
        for key, value in (("json", json_file), ("image_dir", image_dir)):
            if not value:
                raise ValueError(f"{path}: dataset '{name}' is missing '{key}'")
        register_dataset(
            str(name),
            path.parent / image_dir,
            path.parent / json_file,
            image_prefix=str(spec.get("image_prefix", "")),
            overwrite=True,
        )
        names.append(str(name))
    return names


def _under(data_dir: str, rel: str) -> str:
    return rel if os.path.isabs(rel) else os.path.join(data_dir, rel)


def resolve_dataset(name: str, data_dir: str | os.PathLike | None = None) -> ResolvedDataset:
    """Absolute paths of dataset `name`; generates the shapes datasets on first use.

    Raises KeyError for an unknown name and FileNotFoundError when the json is absent.
    """
    if not contains(name):
        raise KeyError(
            f"unknown dataset '{name}'; known: {', '.join(dataset_names())} "
            "(register others with register_dataset or a YAML file)"
        )
    entry = _REGISTERED.get(name) or _BUILTIN[name]
    data_dir = os.fspath(data_dir) if data_dir is not None else default_data_dir()
    json_file = _under(data_dir, entry.json_file)
    candidates = [_under(data_dir, d) for d in entry.image_dir.split("|")]
    if entry.generator and not os.path.isfile(json_file):
        from pydetectron.data.shapes import ensure_shapes_dataset

        ensure_shapes_dataset(
            os.path.join(data_dir, "shapes"),
            split=name.rsplit("_", 1)[1],
            keypoints=entry.generator == "keypoints_shapes",
        )
    if not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"annotation file '{json_file}' of dataset '{name}' not found (link the dataset "
            f"under '{data_dir}' or register it with its own paths)"
        )
    image_dir = next((d for d in candidates if os.path.isdir(d)), candidates[0])
    return ResolvedDataset(name, image_dir, json_file, entry.image_prefix)
