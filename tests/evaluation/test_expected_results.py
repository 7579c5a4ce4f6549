"""EXPECTED_RESULTS checks against hand-computed tolerances."""

import pytest

from pydetectron.evaluation.expected_results import check_expected_results

METRICS = {"coco_2014_minival": {"bbox": {"AP": 0.370}, "segm": {"AP": 0.335}}}


def test_absolute_plus_relative_tolerance():
    # tol = 0.005 + 0.1 * 0.34 = 0.039: 0.370 passes (err 0.030), 0.335 vs 0.38 fails (err 0.045 > 0.043)
    assert check_expected_results(METRICS, [["coco_2014_minival", "box", "AP", 0.34]]) == []
    failed = check_expected_results(METRICS, [["coco_2014_minival", "mask", "AP", 0.38]])
    assert len(failed) == 1 and "err=0.0450, tol=0.0430" in failed[0]


def test_mean_and_std_range():
    assert check_expected_results(METRICS, [["coco_2014_minival", "bbox", "AP", [0.368, 0.001]]], sigma_tol=4) == []
    assert check_expected_results(METRICS, [["coco_2014_minival", "bbox", "AP", [0.360, 0.002]]], sigma_tol=4)


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="EXPECTED_RESULTS: no coco_2014_minival > keypoint > AP"):
        check_expected_results(METRICS, [["coco_2014_minival", "keypoint", "AP", 0.6]])
