"""Box test-time augmentation (TEST.BBOX_AUG), checked against the plain model and by symmetry."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread, tiny_cfg  # noqa: E402

from pydetectron.config import UnsupportedConfigKeyError, get_cfg, merge_cfg_from_list  # noqa: E402
from pydetectron.engine.predictor import Predictor  # noqa: E402
from pydetectron.engine.test_time_augmentation import (  # noqa: E402
    BoxAugmentation,
    View,
    detect_with_augmentation,
    score_view,
)
from pydetectron.modeling.model_builder import build_model  # noqa: E402
from pydetectron.structures.boxes import flip_boxes  # noqa: E402

# 128 x 160 needs no resize and no padding at TEST.SCALE 128: flipped inputs are exact mirrors.
H, W = 128, 160
AUG = "TEST.BBOX_AUG."


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def state():
    torch.manual_seed(0)
    return build_model(tiny_cfg()).state_dict()


def make_predictor(state, *options):
    return Predictor(tiny_cfg(extra=list(options)), {"model": state}, device="cpu")


@pytest.fixture(scope="module")
def plain(state):
    return make_predictor(state)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cv2.rectangle(img, (30, 20), (90, 100), (0, 0, 255), -1)
    return img


def sort_dets(p):
    order = np.lexsort((p.boxes[:, 0], p.classes, -np.round(p.scores, 5)))
    return p.boxes[order], p.scores[order], p.classes[order]


def assert_same(a, b, atol=1e-4):
    boxes_a, scores_a, classes_a = sort_dets(a)
    boxes_b, scores_b, classes_b = sort_dets(b)
    assert len(scores_a) == len(scores_b) > 0
    np.testing.assert_allclose(scores_a, scores_b, atol=1e-6)
    np.testing.assert_array_equal(classes_a, classes_b)
    np.testing.assert_allclose(boxes_a, boxes_b, atol=atol)


def mirrored(p, width):
    out = p.select(np.arange(len(p)))
    out.boxes = flip_boxes(torch.from_numpy(p.boxes), width, plus_one=True).numpy()
    return out


def test_views_follow_detectrons_order():
    aug = BoxAugmentation(True, h_flip=True, scales=(200, 300), max_size=500, scale_h_flip=True,
                          aspect_ratios=(0.5,), aspect_ratio_h_flip=True)  # fmt: skip
    assert aug.views(128, 192) == [
        View(128, 192, flip=True),
        View(200, 500),
        View(200, 500, flip=True),
        View(300, 500),
        View(300, 500, flip=True),
        View(128, 192, aspect_ratio=0.5),
        View(128, 192, flip=True, aspect_ratio=0.5),
        View(128, 192),
    ]


def test_heuristic_settings_are_checked():
    with pytest.raises(ValueError, match="SCORE_HEUR and COORD_HEUR must both be 'UNION'"):
        BoxAugmentation(True, score_heur="UNION", coord_heur="AVG")
    with pytest.raises(ValueError, match="COORD_HEUR must be one of"):
        BoxAugmentation(True, score_heur="AVG", coord_heur="MAX")
    cfg = get_cfg()
    with pytest.raises(UnsupportedConfigKeyError, match="TEST.BBOX_AUG.SCALE_SIZE_DEP: True is not supported"):
        merge_cfg_from_list([AUG + "ENABLED", "True", AUG + "SCALE_SIZE_DEP", "True"], target=cfg)
    cfg.TEST.BBOX_AUG.ENABLED = cfg.TEST.BBOX_AUG.SCALE_SIZE_DEP = True  # set in code, not merged
    with pytest.raises(ValueError, match="SCALE_SIZE_DEP"):
        BoxAugmentation.from_cfg(cfg)


@pytest.mark.parametrize("heuristic", ["UNION", "AVG", "ID"])
def test_plain_view_alone_equals_the_model(state, plain, image, heuristic):
    aug = make_predictor(state, AUG + "ENABLED", "True", AUG + "SCORE_HEUR", heuristic, AUG + "COORD_HEUR", heuristic)
    assert aug.box_augmentation.enabled
    assert_same(aug(image), plain(image))


@pytest.mark.parametrize("heuristic", ["UNION", "AVG"])
def test_a_repeated_view_adds_nothing(state, plain, image, heuristic):
    """The test scale again: UNION's duplicates are suppressed by NMS, AVG averages equal values."""
    aug = make_predictor(
        state, AUG + "ENABLED", "True", AUG + "SCALES", "(128,)", AUG + "MAX_SIZE", "192",
        AUG + "SCORE_HEUR", heuristic, AUG + "COORD_HEUR", heuristic,
    )  # fmt: skip
    assert_same(aug(image), plain(image))


def test_id_heuristic_keeps_the_plain_view(state, plain, image):
    aug = make_predictor(
        state, AUG + "ENABLED", "True", AUG + "H_FLIP", "True", AUG + "SCALES", "(160,)",
        AUG + "SCORE_HEUR", "ID", AUG + "COORD_HEUR", "ID",
    )  # fmt: skip
    assert_same(aug(image), plain(image))


def test_union_with_flip_is_mirror_symmetric(state, plain, image):
    """UNION(x) = {model(x), mirror(model(mirror x))}: so UNION(mirror x) = mirror(UNION(x))."""
    aug = make_predictor(state, AUG + "ENABLED", "True", AUG + "H_FLIP", "True")
    flipped = np.ascontiguousarray(image[:, ::-1])
    on_image, on_flipped = aug(image), aug(flipped)
    assert_same(on_flipped, mirrored(on_image, W), atol=1e-3)
    # and the flipped view contributes: the union differs from the plain detections
    assert not (len(on_image) == len(plain(image)) and np.allclose(sort_dets(on_image)[1], sort_dets(plain(image))[1]))


def test_flipped_view_scores_mirrored_proposals(state, plain, image):
    """Scoring proposals P on the flipped view == scoring mirror(P) on the mirrored image, mirrored back."""
    model, transform = plain.model, plain.transform
    flipped = np.ascontiguousarray(image[:, ::-1])
    with torch.no_grad():
        proposals = score_view(model, image, transform, View(128, 192)).proposals[:50]
        a = score_view(model, image, transform, View(128, 192, flip=True), proposals)
        b = score_view(model, flipped, transform, View(128, 192), flip_boxes(proposals, W, True))
    torch.testing.assert_close(a.probs, b.probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.boxes, flip_boxes(b.boxes, W, True), atol=1e-3, rtol=0)
    torch.testing.assert_close(a.proposals, proposals, atol=1e-3, rtol=0)


def test_aspect_ratio_view_equals_the_stretched_image(state, plain, image):
    model, transform = plain.model, plain.transform
    stretched = cv2.resize(image, None, fx=0.5, fy=1.0, interpolation=cv2.INTER_LINEAR)
    with torch.no_grad():
        proposals = score_view(model, image, transform, View(128, 192)).proposals[:50]
        a = score_view(model, image, transform, View(128, 192, aspect_ratio=0.5), proposals)
        half = proposals.clone()
        half[:, 0::2] *= 0.5
        b = score_view(model, stretched, transform, View(128, 192), half)
    torch.testing.assert_close(a.probs, b.probs, atol=1e-5, rtol=0)
    expected = b.boxes.clone()
    expected[:, 0::2] *= 2.0
    torch.testing.assert_close(a.boxes, expected, atol=1e-3, rtol=0)


def test_scale_view_equals_a_model_tested_at_that_scale(state, image):
    """A 192 px view, post-processed alone, gives what a predictor with TEST.SCALE 192 gives."""
    at_192 = make_predictor(state, "TEST.SCALE", "192", "TEST.MAX_SIZE", "400")
    plain = make_predictor(state)
    with torch.no_grad():
        view = score_view(plain.model, image, plain.transform, View(192, 400))
        detections = plain.model.roi_heads.box.postprocessor.single_image(view.probs, view.boxes)
    expected = at_192(image)
    np.testing.assert_allclose(detections.scores.numpy(), expected.scores, atol=1e-6)
    np.testing.assert_allclose(detections.boxes.numpy(), expected.boxes, atol=1e-3)


def test_multi_scale_flip_union_runs_and_stays_in_the_image(state, image):
    aug = make_predictor(
        state, AUG + "ENABLED", "True", AUG + "H_FLIP", "True", AUG + "SCALES", "(96, 160)",
        AUG + "MAX_SIZE", "300", AUG + "SCALE_H_FLIP", "True", AUG + "ASPECT_RATIOS", "(0.8,)",
    )  # fmt: skip
    out = aug(image)
    assert len(out) > 0 and out.image_size == (H, W)
    assert out.boxes.min() >= 0 and out.boxes[:, [0, 2]].max() <= W - 1 and out.boxes[:, [1, 3]].max() <= H - 1
    with torch.no_grad():
        direct = detect_with_augmentation(aug.model, image, aug.transform, aug.box_augmentation)
    np.testing.assert_allclose(direct.scores.numpy(), out.scores)
