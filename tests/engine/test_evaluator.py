"""DatasetEvaluator: the AP of given weights on test datasets, with the metric names the hooks use."""

import hashlib
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pydetectron.config import get_cfg
from pydetectron.data import build_test_dataset, register_dataset, write_shapes_dataset
from pydetectron.data.catalog import unregister_dataset
from pydetectron.data.transforms import read_image
from pydetectron.engine.evaluator import DatasetEvaluator


class GroundTruthPredictor:
    """Answers with the ground truth of the image it is shown, scaled by the loaded weight `w`
    (w = 1: perfect boxes; w = 0: all boxes collapse to a point, AP 0)."""

    def __init__(self, roidb):
        self.model = torch.nn.Linear(1, 1, bias=False)
        self.box_augmentation = SimpleNamespace(enabled=True)
        self.transform = None
        self.answers = {}
        for i in range(len(roidb)):
            entry = roidb.entry(i, with_segms=False)
            keep = ~entry["is_crowd"]
            key = hashlib.sha1(read_image(entry["image"]).tobytes()).hexdigest()
            self.answers[key] = (entry["boxes"][keep], entry["gt_classes"][keep])

    def predict_augmented(self, image):
        boxes, classes = self.answers[hashlib.sha1(image.tobytes()).hexdigest()]
        w = float(self.model.weight.detach())
        boxes = boxes.copy()
        boxes[:, 2:] = boxes[:, :2] + (boxes[:, 2:] - boxes[:, :2]) * w
        scores = np.linspace(0.99, 0.9, len(boxes)).astype(np.float32)
        return SimpleNamespace(boxes=boxes, scores=scores, classes=classes.astype(np.int64), masks=None, keypoints=None)


@pytest.fixture
def two_sets(tmp_path):
    json_file = write_shapes_dataset(tmp_path / "val", 3, seed=5, min_side=64, max_side=96)
    for name in ("eval_set_a", "eval_set_b"):
        register_dataset(name, tmp_path / "val" / "images", json_file, overwrite=True)
    yield [(name, build_test_dataset(get_cfg(), name)) for name in ("eval_set_a", "eval_set_b")]
    for name in ("eval_set_a", "eval_set_b"):
        unregister_dataset(name)


def test_metrics_of_the_given_weights_for_each_dataset(two_sets, tmp_path):
    predictor = GroundTruthPredictor(two_sets[0][1])
    evaluator = DatasetEvaluator(lambda: predictor, two_sets, tmp_path / "out")
    perfect = evaluator({"weight": torch.ones(1, 1)}, step=9)
    assert perfect["bbox/AP"] == pytest.approx(1.0) and perfect["eval_set_b/bbox/AP50"] == pytest.approx(1.0)
    assert set(perfect) == {f"{prefix}bbox/{m}" for prefix in ("", "eval_set_a/", "eval_set_b/")
                            for m in ("AP", "AP50", "AP75", "APs", "APm", "APl")}  # fmt: skip
    assert (tmp_path / "out" / "eval_set_b" / "bbox_eval_set_b_results.json").is_file()
    collapsed = evaluator({"weight": torch.zeros(1, 1)}, step=10)
    assert collapsed["bbox/AP"] == pytest.approx(0.0)


def test_without_an_output_folder_nothing_is_left_behind(two_sets, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    evaluator = DatasetEvaluator(lambda: GroundTruthPredictor(two_sets[0][1]), two_sets[:1], None)
    assert set(evaluator({"weight": torch.ones(1, 1)}, step=0)) == {
        f"bbox/{m}" for m in ("AP", "AP50", "AP75", "APs", "APm", "APl")
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pydetectron_eval_")]
    with pytest.raises(ValueError, match="TEST.DATASETS is empty"):
        DatasetEvaluator(lambda: None, [], None)
