"""COCO evaluation: ground truth scores AP 1, shifted boxes score what pycocotools computes."""

import contextlib
import io
import json

import numpy as np
import pytest
from evaluation_fixtures import small_coco, write_json
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pydetectron.evaluation import detections_to_coco, evaluate_coco, load_coco_gt, xyxy_to_xywh
from pydetectron.evaluation.coco_eval import METRIC_NAMES

CONTIGUOUS_TO_JSON = {1: 3, 2: 9, 3: 1}
JSON_TO_CONTIGUOUS = {v: k for k, v in CONTIGUOUS_TO_JSON.items()}


@pytest.fixture
def gt(tmp_path):
    return load_coco_gt(write_json(tmp_path / "gt.json", small_coco()))


def gt_detections(coco_gt, plus_one):
    """Per image: the ground truth as detections (xyxy boxes, contiguous classes, masks, keypoints)."""
    out = {}
    for image_id in coco_gt.getImgIds():
        anns = coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id]))
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64)
        boxes = xywh.copy()
        boxes[:, 2:] = xywh[:, :2] + xywh[:, 2:] - (1.0 if plus_one else 0.0)
        keypoints = np.zeros((len(anns), 4, 3))
        for i, a in enumerate(anns):
            if "keypoints" in a:
                keypoints[i] = np.array(a["keypoints"], dtype=np.float64).reshape(4, 3)
        out[image_id] = {
            "boxes": boxes,
            "scores": np.linspace(0.9, 0.5, len(anns)),
            "classes": np.array([JSON_TO_CONTIGUOUS[a["category_id"]] for a in anns]),
            "masks": np.stack([coco_gt.annToMask(a).astype(bool) for a in anns]),
            "keypoints": keypoints,
            "is_person": np.array([a["category_id"] == 1 for a in anns]),
        }
    return out


def results_of(detections, plus_one=True):
    results = {"bbox": [], "segm": [], "keypoints": []}
    for image_id, d in detections.items():
        person = d["is_person"]
        per_task = detections_to_coco(
            image_id, d["boxes"], d["scores"], d["classes"], CONTIGUOUS_TO_JSON, plus_one, masks=d["masks"]
        )
        results["bbox"] += per_task["bbox"]
        results["segm"] += per_task["segm"]
        people = detections_to_coco(
            image_id, d["boxes"][person], d["scores"][person], d["classes"][person], CONTIGUOUS_TO_JSON,
            plus_one, keypoints=d["keypoints"][person],
        )  # fmt: skip
        results["keypoints"] += people["keypoints"]
    return results


def direct_cocoeval(json_path, results, iou_type):
    """pycocotools on its own, on the same result json."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(json_path))
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(results)))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if iou_type == "keypoints":
            evaluator.params.kpt_oks_sigmas = np.full(4, evaluator.params.kpt_oks_sigmas.mean())
            evaluator.params.catIds = [1]  # the one category with keypoints
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("plus_one", [True, False])
def test_ground_truth_as_detections_scores_ap_one(gt, plus_one):
    results = results_of(gt_detections(gt, plus_one), plus_one)
    for task in ("bbox", "segm", "keypoints"):
        metrics = evaluate_coco(gt, results[task], task, print_summary=False)
        assert set(metrics) == set(METRIC_NAMES[task])
        assert metrics["AP"] == pytest.approx(1.0), task
        assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(1.0), task


def test_result_fields_follow_coco(gt):
    detections = gt_detections(gt, plus_one=True)
    results = results_of(detections)
    first = results["bbox"][0]
    assert set(first) == {"image_id", "category_id", "bbox", "score"}
    # the boxes, category ids and masks are the ground truth's again
    ann_by_key = {(a["image_id"], tuple(a["bbox"])): a for a in gt.dataset["annotations"]}
    for r in results["bbox"]:
        ann = ann_by_key[(r["image_id"], tuple(round(v, 3) for v in r["bbox"]))]
        assert ann["category_id"] == r["category_id"]
    segm = results["segm"][0]
    assert isinstance(segm["segmentation"]["counts"], str)
    assert mask_util.area(segm["segmentation"]) == int(detections[11]["masks"][0].sum())
    kps = results["keypoints"][0]["keypoints"]
    assert len(kps) == 12 and kps[2::3] == [1.0] * 4


def test_shifted_boxes_score_what_pycocotools_computes(gt, tmp_path):
    rng = np.random.default_rng(0)
    detections = gt_detections(gt, plus_one=True)
    for d in detections.values():
        sizes = d["boxes"][:, 2:] - d["boxes"][:, :2]
        shift = rng.uniform(-0.4, 0.4, size=(len(sizes), 2)) * sizes
        d["boxes"] = d["boxes"] + np.concatenate([shift, shift], axis=1)
        d["scores"] = rng.uniform(0.1, 1.0, len(sizes))
        d["masks"] = np.roll(d["masks"], shift=5, axis=2)
        d["keypoints"][:, :, :2] += rng.normal(0, 6, size=d["keypoints"][:, :, :2].shape)
    results = results_of(detections)
    json_path = tmp_path / "gt.json"
    write_json(json_path, small_coco())
    for task in ("bbox", "segm", "keypoints"):
        ours = evaluate_coco(gt, results[task], task, print_summary=False)
        reference = direct_cocoeval(json_path, results[task], task)
        expected = {name: reference[i] for i, name in enumerate(METRIC_NAMES[task])}
        assert ours == pytest.approx(expected), task
        assert 0.0 < ours["AP"] < 1.0, task  # the shifts are neither harmless nor total misses


def test_one_box_at_iou_two_thirds_scores_four_tenths(tmp_path):
    """IoU 80/120: a hit at thresholds 0.50..0.65 (4 of 10), a miss above; a small object."""
    coco = {
        "images": [{"id": 1, "width": 50, "height": 50, "file_name": "x.png"}],
        "categories": [{"id": 5, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 10, 10], "area": 100.0, "iscrowd": 0}
        ],
    }
    gt = load_coco_gt(write_json(tmp_path / "one.json", coco))
    boxes = np.array([[12.0, 10.0, 22.0, 20.0]])  # shifted 2 px right (no +1: w = x2 - x1)
    results = detections_to_coco(1, boxes, np.array([0.9]), np.array([1]), {1: 5}, plus_one=False)["bbox"]
    metrics = evaluate_coco(gt, results, "bbox", print_summary=False)
    assert metrics["AP"] == pytest.approx(0.4)
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(0.0)
    assert metrics["APs"] == pytest.approx(0.4) and metrics["APm"] == -1.0 and metrics["APl"] == -1.0


def test_no_detections_scores_zero(gt):
    metrics = evaluate_coco(gt, [], "bbox", print_summary=False)
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0


def test_summary_table_is_printed(gt, capsys):
    results = results_of(gt_detections(gt, True))["bbox"]
    evaluate_coco(gt, results, "bbox", print_summary=True)
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in printed


def test_xywh_conversion_and_unknown_class():
    boxes = np.array([[10.0, 20.0, 29.0, 59.0]])
    assert xyxy_to_xywh(boxes, plus_one=True).tolist() == [[10.0, 20.0, 20.0, 40.0]]
    assert xyxy_to_xywh(boxes, plus_one=False).tolist() == [[10.0, 20.0, 19.0, 39.0]]
    with pytest.raises(ValueError, match="class 7 has no json category"):
        detections_to_coco(1, boxes, np.array([0.5]), np.array([7]), {1: 3, 2: 9})
    with pytest.raises(ValueError, match="1 boxes, 2 scores"):
        detections_to_coco(1, boxes, np.array([0.5, 0.4]), np.array([1]), {1: 3})


def test_missing_ground_truth_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load_coco_gt(tmp_path / "nothere.json")
