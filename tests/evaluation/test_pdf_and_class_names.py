"""The PDF writer (parsed back by hand) and the class-name lists."""

import re

import cv2
import numpy as np
import pytest
from evaluation_fixtures import parse_pdf

from pydetectron.data.shapes import shapes_categories
from pydetectron.utils.class_names import (
    COCO_CLASSES,
    KEYPOINTS_SHAPES_CLASSES,
    SHAPES_CLASSES,
    class_label,
    class_names_for_dataset,
    class_names_from_categories,
)
from pydetectron.utils.pdf import PdfImageWriter, merge_images_to_pdf, write_pdf


def picture(h, w, value):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = value
    img[:, w // 2 :] = (0, 200, 0)
    return img


def test_one_page_per_picture_with_its_pixels(tmp_path):
    pictures = [picture(60, 80, (255, 0, 0)), picture(100, 50, (0, 0, 255)), picture(30, 30, (90, 90, 90))]
    path = write_pdf(pictures, tmp_path / "out.pdf")
    parsed = parse_pdf(path.read_bytes())
    assert len(parsed["pages"]) == 3
    assert re.search(rb"/Type /Pages /Kids \[[^\]]*\] /Count 3", b"".join(parsed["objects"].values()))
    for pic, jpeg, page in zip(pictures, parsed["images"], parsed["pages"]):
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == pic.shape
        assert np.abs(decoded.astype(int) - pic.astype(int)).mean() < 8  # JPEG, not exact
        h, w = pic.shape[:2]
        assert f"/MediaBox [0 0 {w} {h}]".encode() in parsed["objects"][page]


def test_merge_image_files_and_errors(tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), picture(20 + i, 30, (i * 40, 0, 0)))
    parsed = parse_pdf(merge_images_to_pdf(paths, tmp_path / "merged.pdf").read_bytes())
    assert len(parsed["pages"]) == 4 and len(parsed["images"]) == 4
    with pytest.raises(ValueError, match="at least one page"):
        PdfImageWriter().save(tmp_path / "empty.pdf")
    with pytest.raises(ValueError, match="could not read picture '.*nothere.png'"):
        merge_images_to_pdf([tmp_path / "nothere.png"], tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        PdfImageWriter().add_page(np.zeros((4, 4), np.uint8))
    assert not (tmp_path / "empty.pdf").exists()


def test_coco_class_names():
    assert len(COCO_CLASSES) == 81 and len(set(COCO_CLASSES)) == 81
    assert COCO_CLASSES[0] == "__background__" and COCO_CLASSES[1] == "person"
    assert COCO_CLASSES[80] == "toothbrush" and COCO_CLASSES.index("dining table") == 61
    assert class_names_for_dataset("coco_2017_val") == list(COCO_CLASSES)
    assert class_names_for_dataset("keypoints_coco_2014_minival") == ["__background__", "person"]


def test_shapes_names_match_the_generated_datasets():
    for keypoints, names in ((False, SHAPES_CLASSES), (True, KEYPOINTS_SHAPES_CLASSES)):
        assert class_names_from_categories(shapes_categories(keypoints)) == list(names)
    assert class_names_for_dataset("shapes_val", num_classes=5) == list(SHAPES_CLASSES)


def test_names_from_categories_and_fallbacks():
    cats = [{"id": 9, "name": "b"}, {"id": 2, "name": "a"}]
    assert class_names_for_dataset(categories=cats) == ["__background__", "b", "a"]
    assert class_names_for_dataset("my_data", num_classes=3) == ["__background__", "class 1", "class 2"]
    # a list of the wrong length is not used for another model
    assert class_names_for_dataset("coco2017", num_classes=3) == ["__background__", "class 1", "class 2"]
    assert class_label(["__background__", "cat"], 1) == "cat" and class_label(["__background__"], 4) == "class 4"
    with pytest.raises(ValueError, match=r"categories\[1\] has no 'name'"):
        class_names_from_categories([{"name": "x"}, {"id": 3}])
    with pytest.raises(ValueError, match="no class names known"):
        class_names_for_dataset("my_data")
