"""Mask and keypoint test-time augmentation (TEST.MASK_AUG, TEST.KPS_AUG) through the Predictor."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread, tiny_cfg  # noqa: E402

from pydetectron.engine.predictor import Predictor  # noqa: E402
from pydetectron.engine.test_time_augmentation import (  # noqa: E402
    COCO_KEYPOINT_FLIP_PAIRS,
    BranchAugmentation,
    View,
    branch_view_outputs,
)
from pydetectron.modeling.model_builder import build_model  # noqa: E402
from pydetectron.structures.boxes import flip_boxes  # noqa: E402
from pydetectron.structures.detections import Detections  # noqa: E402

H, W = 128, 160  # no resize, no padding at TEST.SCALE 128: a flipped input is an exact mirror
MASK = ["MODEL.MASK_ON", "True", "MRCNN.ROI_MASK_HEAD", "mask_rcnn_heads.mask_rcnn_fcn_head_v1up4convs",
        "MRCNN.DIM_REDUCED", "32", "MRCNN.RESOLUTION", "14", "MRCNN.ROI_XFORM_RESOLUTION", "7"]
KEYPOINTS = ["MODEL.KEYPOINTS_ON", "True", "KRCNN.ROI_KEYPOINTS_HEAD", "keypoint_rcnn_heads.roi_pose_head_v1convX",
             "KRCNN.NUM_KEYPOINTS", "17", "KRCNN.NUM_STACKED_CONVS", "2", "KRCNN.CONV_HEAD_DIM", "32",
             "KRCNN.HEATMAP_SIZE", "28", "KRCNN.ROI_XFORM_RESOLUTION", "7", "KRCNN.UP_SCALE", "2",
             "KRCNN.USE_DECONV_OUTPUT", "True", "TEST.SCORE_THRESH", "0.0"]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def untrained_state(extra, seed):
    """Initial weights, the branch's convs made far from Detectron's near-zero init (so outputs vary)."""
    torch.manual_seed(seed)
    state = build_model(tiny_cfg(extra=extra)).state_dict()
    for name, value in state.items():
        if name.startswith("roi_heads.branches.") and name.endswith("weight") and value.dim() == 4:
            state[name] = torch.nn.init.kaiming_normal_(torch.empty_like(value), mode="fan_out")
    return state


@pytest.fixture(scope="module")
def states():
    return {"mask": (MASK, untrained_state(MASK, 0)), "keypoint": (KEYPOINTS, untrained_state(KEYPOINTS, 1))}


def predictor(states, kind, *options):
    extra, state = states[kind]
    return Predictor(tiny_cfg(extra=extra + list(options)), {"model": state}, device="cpu")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cv2.circle(img, (60, 70), 30, (0, 200, 0), -1)
    return img


def test_heuristics_combine_like_detectrons_numpy():
    rng = np.random.default_rng(0)
    views = [rng.uniform(0.01, 0.99, (3, 5, 5)).astype(np.float32) for _ in range(4)]
    tensors = [torch.from_numpy(v) for v in views]

    def combined(section, heur):
        return BranchAugmentation(True, section=section, heur=heur).combine(tensors).numpy()

    logits = np.mean([-np.log((1.0 - y) / np.maximum(y, 1e-20)) for y in views], axis=0)
    np.testing.assert_allclose(combined("MASK_AUG", "SOFT_AVG"), np.mean(views, axis=0), rtol=1e-6)
    np.testing.assert_allclose(combined("MASK_AUG", "SOFT_MAX"), np.amax(views, axis=0))
    np.testing.assert_allclose(combined("MASK_AUG", "LOGIT_AVG"), 1.0 / (1.0 + np.exp(-logits)), rtol=1e-5)
    np.testing.assert_allclose(combined("KPS_AUG", "HM_AVG"), np.mean(views, axis=0), rtol=1e-6)
    np.testing.assert_allclose(combined("KPS_AUG", "HM_MAX"), np.amax(views, axis=0))
    with pytest.raises(ValueError, match="TEST.KPS_AUG.HEUR must be one of"):
        BranchAugmentation(True, section="KPS_AUG", heur="SOFT_AVG")


def test_coco_flip_pairs_are_detectrons_flip_map():
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
    parts = ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    detectron_flip_map = {f"left_{p}": f"right_{p}" for p in parts}
    assert {names[i]: names[j] for i, j in COCO_KEYPOINT_FLIP_PAIRS} == detectron_flip_map


@pytest.mark.parametrize("heur", ["SOFT_AVG", "SOFT_MAX", "LOGIT_AVG"])
def test_mask_aug_of_the_plain_view_alone_equals_the_model(states, image, heur):
    plain = predictor(states, "mask")(image)
    augmented = predictor(states, "mask", "TEST.MASK_AUG.ENABLED", "True", "TEST.MASK_AUG.HEUR", heur)
    assert augmented.branch_augmentation and not augmented.box_augmentation.enabled
    out = augmented(image)
    assert len(out) == len(plain) > 0
    np.testing.assert_array_equal(out.boxes, plain.boxes)
    np.testing.assert_array_equal(out.masks, plain.masks)


def test_mask_aug_at_the_test_scale_twice_equals_the_model(states, image):
    plain = predictor(states, "mask")(image)
    out = predictor(states, "mask", "TEST.MASK_AUG.ENABLED", "True", "TEST.MASK_AUG.SCALES", "(128,)",
                    "TEST.MASK_AUG.MAX_SIZE", "192")(image)  # fmt: skip
    np.testing.assert_array_equal(out.masks, plain.masks)


def test_flipped_view_masks_are_the_mirrored_images_masks_mirrored(states, image):
    """The flipped view == the branch on the mirror image with mirrored boxes, unflipped."""
    p = predictor(states, "mask")
    model, transform = p.model, p.transform
    detections = Detections(
        boxes=torch.tensor([[20.0, 30.0, 90.0, 110.0], [100.0, 5.0, 150.0, 60.0]]),
        scores=torch.tensor([0.9, 0.8]), classes=torch.tensor([1, 3]),
    )  # fmt: skip
    mirror = np.ascontiguousarray(image[:, ::-1])
    with torch.no_grad():
        flipped_view = branch_view_outputs(model, image, transform, View(128, 192, flip=True), detections, ["mask"])
        mirrored = Detections(boxes=flip_boxes(detections.boxes, W, True), scores=detections.scores,
                              classes=detections.classes)  # fmt: skip
        direct = branch_view_outputs(model, mirror, transform, View(128, 192), mirrored, ["mask"])
    torch.testing.assert_close(flipped_view["mask"], direct["mask"].flip(-1))
    assert not torch.allclose(flipped_view["mask"], direct["mask"])  # the flip back mattered


def test_mask_aug_with_flips_and_scales_changes_the_masks_and_keeps_their_shape(states, image):
    plain = predictor(states, "mask")(image)
    out = predictor(states, "mask", "TEST.MASK_AUG.ENABLED", "True", "TEST.MASK_AUG.H_FLIP", "True",
                    "TEST.MASK_AUG.SCALES", "(96, 160)", "TEST.MASK_AUG.SCALE_H_FLIP", "True",
                    "TEST.MASK_AUG.MAX_SIZE", "300")(image)  # fmt: skip
    np.testing.assert_array_equal(out.boxes, plain.boxes)
    assert out.masks.shape == plain.masks.shape == (len(plain), H, W)
    assert (out.masks != plain.masks).any()


def test_keypoint_flip_swaps_left_and_right_heatmaps(states, image):
    """A flipped view's heatmaps: the mirror image's heatmaps mirrored with left/right channels swapped."""
    p = predictor(states, "keypoint")
    model, transform = p.model, p.transform
    detections = Detections(boxes=torch.tensor([[20.0, 30.0, 90.0, 110.0]]), scores=torch.tensor([0.9]),
                            classes=torch.tensor([1]))  # fmt: skip
    mirror = np.ascontiguousarray(image[:, ::-1])
    with torch.no_grad():
        flipped_view = branch_view_outputs(model, image, transform, View(128, 192, flip=True), detections, ["keypoint"])
        mirrored = Detections(boxes=flip_boxes(detections.boxes, W, True), scores=detections.scores,
                              classes=detections.classes)  # fmt: skip
        direct = branch_view_outputs(model, mirror, transform, View(128, 192), mirrored, ["keypoint"])
    expected = direct["keypoint"].flip(-1)
    torch.testing.assert_close(flipped_view["keypoint"][:, 0], expected[:, 0])  # the nose stays
    torch.testing.assert_close(flipped_view["keypoint"][:, 1], expected[:, 2])  # left eye <- right eye
    torch.testing.assert_close(flipped_view["keypoint"][:, 16], expected[:, 15])  # right ankle <- left ankle


def test_keypoint_aug_runs_through_the_predictor(states, image):
    plain = predictor(states, "keypoint")(image)
    single = predictor(states, "keypoint", "TEST.KPS_AUG.ENABLED", "True")(image)
    np.testing.assert_array_equal(single.keypoints, plain.keypoints)
    out = predictor(states, "keypoint", "TEST.KPS_AUG.ENABLED", "True", "TEST.KPS_AUG.H_FLIP", "True",
                    "TEST.KPS_AUG.HEUR", "HM_MAX")(image)  # fmt: skip
    assert out.keypoints.shape == plain.keypoints.shape and len(out) > 0
    assert not np.array_equal(out.keypoints, plain.keypoints)
