"""The shapes dataset: deterministic from its seed, valid COCO, masks on the painted shapes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

import pydetectron.data.shapes as shapes
from pydetectron.data import load_coco_roidb, resolve_dataset, write_shapes_dataset


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(root, num_images=24, seed=5)
    return root


@pytest.fixture(scope="module")
def keypoint_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp_shapes")
    write_shapes_dataset(root, num_images=10, seed=6, keypoints=True)
    return root


def test_same_seed_same_files(tmp_path, shapes_dir):
    write_shapes_dataset(tmp_path / "again", num_images=24, seed=5)
    assert _files(tmp_path / "again") == _files(shapes_dir)
    write_shapes_dataset(tmp_path / "other", num_images=24, seed=7)
    assert _files(tmp_path / "other") != _files(shapes_dir)


def test_pycocotools_loads_it_and_masks_fit_boxes(shapes_dir):
    coco = COCO(str(shapes_dir / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(shapes.SHAPE_CLASSES)
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 2 * len(coco.getImgIds())
    sizes = set()
    for ann in anns:
        mask = coco.annToMask(ann)
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        # the mask fills its box: it touches all four sides (to within a pixel)
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
        assert abs(xs.max() + 1 - (x + w)) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1
        assert abs(mask.sum() - ann["area"]) <= 0.02 * ann["area"] + 2
        if not ann["iscrowd"]:
            sizes.add(max(w, h))
    assert min(sizes) >= 8 and max(sizes) <= 129
    assert max(sizes) - min(sizes) > 40  # varied scales


def test_masks_lie_on_uniformly_coloured_shapes(shapes_dir):
    coco = COCO(str(shapes_dir / "annotations.json"))
    checked = 0
    for ann in coco.loadAnns(coco.getAnnIds(iscrowd=False)):
        mask = cv2.erode(coco.annToMask(ann), np.ones((5, 5), np.uint8))
        if mask.sum() < 30:
            continue
        info = coco.loadImgs(ann["image_id"])[0]
        image = cv2.imread(str(shapes_dir / "images" / info["file_name"])).astype(np.float32)
        inside = image[mask > 0]
        ring = cv2.dilate(coco.annToMask(ann), np.ones((9, 9), np.uint8)) - coco.annToMask(ann)
        outside = image[ring > 0]
        assert inside.std(axis=0).max() < 16  # one fill colour (+ noise, JPEG)
        # and it stands out from what surrounds it (background or another shape)
        assert np.abs(inside.mean(axis=0) - outside.mean(axis=0)).max() > 15
        checked += 1
    assert checked > 20


def test_crowd_regions_use_uncompressed_rle(tmp_path):
    write_shapes_dataset(tmp_path, num_images=40, seed=11)
    coco = COCO(str(tmp_path / "annotations.json"))
    crowd = coco.loadAnns(coco.getAnnIds(iscrowd=True))
    assert crowd, "expected a few crowd regions in 40 images"
    for ann in crowd:
        assert isinstance(ann["segmentation"]["counts"], list)
        assert coco.annToMask(ann).sum() == ann["area"]


def test_images_vary_in_size_and_aspect(shapes_dir):
    coco = COCO(str(shapes_dir / "annotations.json"))
    sizes = [(im["width"], im["height"]) for im in coco.loadImgs(coco.getImgIds())]
    assert all(160 <= w <= 320 and 160 <= h <= 320 for w, h in sizes)
    ratios = [w / h for w, h in sizes]
    assert min(ratios) < 0.9 and max(ratios) > 1.1


def test_keypoint_variant(keypoint_dir):
    coco = COCO(str(keypoint_dir / "annotations.json"))
    (cat,) = coco.loadCats(coco.getCatIds())
    assert cat["name"] == "triangle"
    assert cat["keypoints"] == ["top", "left_corner", "right_corner", "center"]
    for ann in coco.loadAnns(coco.getAnnIds()):
        kps = np.array(ann["keypoints"], dtype=np.float64).reshape(4, 3)
        x, y, w, h = ann["bbox"]
        assert ann["num_keypoints"] == (kps[:, 2] > 0).sum()
        pts = kps[kps[:, 2] == 2, :2]  # visible ones lie on the visible shape
        assert ((pts[:, 0] >= x - 2) & (pts[:, 0] <= x + w + 2)).all()
        assert ((pts[:, 1] >= y - 2) & (pts[:, 1] <= y + h + 2)).all()
        if (kps[:3, 2] > 0).all():  # top is the highest corner, left left of right
            assert kps[0, 1] < min(kps[1, 1], kps[2, 1]) and kps[1, 0] < kps[2, 0]
    roidb = load_coco_roidb(keypoint_dir / "annotations.json", keypoint_dir / "images")
    assert roidb.info.keypoint_flip_map == {"left_corner": "right_corner"}


def test_generated_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setattr(shapes, "DEFAULT_NUM_IMAGES", {"train": 3, "val": 2})
    resolved = resolve_dataset("keypoints_shapes_val", tmp_path)
    assert resolved.json_file == str(tmp_path / "shapes/keypoints_shapes_val/annotations.json")
    coco = COCO(resolved.json_file)
    assert len(coco.getImgIds()) == 2
    first = _files(tmp_path / "shapes")
    resolve_dataset("keypoints_shapes_val", tmp_path)  # present: not regenerated
    assert _files(tmp_path / "shapes") == first
    assert not [p for p in (tmp_path / "shapes").iterdir() if p.name.startswith(".")]


def test_a_dataset_of_an_older_generator_is_regenerated_and_a_foreign_json_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(shapes, "DEFAULT_NUM_IMAGES", {"train": 2, "val": 2})
    out = shapes.ensure_shapes_dataset(tmp_path, "val")
    json_path = out / "annotations.json"
    current = json.loads(json_path.read_text())
    assert current["info"]["version"] == shapes.GENERATOR_VERSION
    outdated = dict(current, info=dict(current["info"], version=shapes.GENERATOR_VERSION - 1), annotations=[])
    json_path.write_text(json.dumps(outdated))
    (out / "images" / "stale.jpg").write_bytes(b"old")
    assert shapes.ensure_shapes_dataset(tmp_path, "val") == out
    assert json.loads(json_path.read_text()) == current
    assert not (out / "images" / "stale.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes_val"]  # no temporary folder left
    foreign = {"images": [], "annotations": [], "categories": []}
    json_path.write_text(json.dumps(foreign))
    shapes.ensure_shapes_dataset(tmp_path, "val")
    assert json.loads(json_path.read_text()) == foreign
