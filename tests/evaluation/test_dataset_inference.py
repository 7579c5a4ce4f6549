"""Running a predictor over a roidb: bad images are skipped by name; results evaluate with the json ids."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from evaluation_fixtures import small_coco, write_images, write_json

from pydetectron.data import load_coco_roidb
from pydetectron.evaluation import evaluate_dataset, infer_range, merge_ranges


class FakePredictor:
    """Returns the roidb's ground truth of the image it is shown (found by image size)."""

    def __init__(self, roidb, augmented=False, fail_on_height=None):
        self.augmented = augmented
        self.transform = self.prepare
        self.fail_on_height = fail_on_height
        self.by_size = {}
        for i in range(len(roidb)):
            entry = roidb.entry(i, with_segms=False)
            self.by_size[(entry["height"], entry["width"])] = entry

    @staticmethod
    def prepare(image):
        return {"size": image.shape[:2]}

    def _predict(self, size):
        if size[0] == self.fail_on_height:
            raise RuntimeError("out of memory (simulated)")
        entry = self.by_size[tuple(size)]
        keep = ~entry["is_crowd"]
        return SimpleNamespace(
            boxes=entry["boxes"][keep],
            scores=np.linspace(1.0, 0.5, keep.sum()).astype(np.float32),
            classes=entry["gt_classes"][keep].astype(np.int64),
            masks=None,
            keypoints=None,
        )

    def predict_prepared(self, prepared):
        return [self._predict(p["size"]) for p in prepared]

    def predict_augmented(self, image):
        return self._predict(image.shape[:2])


@pytest.fixture
def dataset(tmp_path):
    coco = small_coco()
    write_images(tmp_path / "images", coco)
    json_path = write_json(tmp_path / "gt.json", coco)
    return load_coco_roidb(json_path, tmp_path / "images", name="small"), json_path


@pytest.mark.parametrize("augmented", [False, True])
@pytest.mark.parametrize("workers", [0, 1])
def test_ground_truth_predictor_scores_ap_one(dataset, tmp_path, augmented, workers):
    roidb, json_path = dataset
    seen = []
    part = infer_range(FakePredictor(roidb, augmented), roidb, 0, len(roidb), "fp", num_workers=workers,
                       on_image=lambda item, prediction: seen.append(item["image_id"]))  # fmt: skip
    assert seen == [11, 12, 13] and all(not r.error for r in part.images)
    images = merge_ranges([part], len(roidb))
    metrics = evaluate_dataset(images, "small", json_path, roidb.info.contiguous_category_id_to_json_id,
                               tmp_path / "out", print_summary=False)  # fmt: skip
    assert list(metrics) == ["bbox"]
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
    results = json.loads((tmp_path / "out" / "bbox_small_results.json").read_text())
    assert len(results) == 6 and {r["category_id"] for r in results} == {1, 3, 9}


def test_bad_images_are_skipped_by_name_and_the_run_goes_on(dataset, tmp_path):
    roidb, json_path = dataset
    (tmp_path / "images" / "b.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "images" / "c.png").unlink()
    part = infer_range(FakePredictor(roidb), roidb, 0, 3, "fp")
    errors = {r.image_id: r.error for r in part.images}
    assert errors[11] == ""
    assert "b.png" in errors[12] and "c.png" in errors[13] and "not found" in errors[13]
    assert [len(r.scores) for r in part.images] == [3, 0, 0]
    # a failure inside the model is recorded the same way
    (tmp_path / "images" / "b.png").unlink()
    write_images(tmp_path / "images", small_coco())
    part = infer_range(FakePredictor(roidb, fail_on_height=400), roidb, 0, 3, "fp")
    assert [bool(r.error) for r in part.images] == [False, True, False]
    assert "out of memory" in part.images[1].error
    mapping = roidb.info.contiguous_category_id_to_json_id
    merged = merge_ranges([part], 3)
    metrics = evaluate_dataset(merged, "small", json_path, mapping, tmp_path / "out", print_summary=False)
    assert 0.0 < metrics["bbox"]["AP"] < 1.0  # image 12's objects are missed


def test_sub_range(dataset):
    roidb, _ = dataset
    part = infer_range(FakePredictor(roidb), roidb, 1, 3, "fp")
    assert (part.start, part.end) == (1, 3) and [r.index for r in part.images] == [1, 2]
