"""Detection pictures: boxes, labels, translucent masks and keypoints change exactly where drawn."""

import numpy as np
import pytest

from pydetectron.utils.class_names import COCO_KEYPOINT_NAMES
from pydetectron.utils.vis import (
    BOX_COLOR,
    colormap,
    draw_mask,
    keypoint_limbs,
    vis_one_image,
)


def gray_image(h=120, w=160):
    return np.full((h, w, 3), 100, np.uint8)


def changed(a, b):
    return np.any(a != b, axis=2)


def test_boxes_and_labels_are_drawn_only_for_confident_detections():
    image = gray_image()
    boxes = np.array([[40.0, 50.0, 100.0, 90.0], [5.0, 5.0, 30.0, 30.0]])
    out = vis_one_image(image, boxes, np.array([0.95, 0.5]), np.array([1, 2]), ["bg", "cat", "dog"], thresh=0.9)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(image, gray_image())  # the input is left alone
    diff = changed(out, image)
    # the box outline is Detectron's green
    assert tuple(out[90, 70]) == BOX_COLOR and tuple(out[70, 40]) == BOX_COLOR
    assert not diff[70, 70]  # inside the box, no mask: untouched
    assert diff[38:48, 40:70].any()  # the label sits above the box
    assert not diff[5:31, 5:31].any()  # below the threshold: not drawn
    assert not diff[100:, :].any()


def test_mask_is_blended_with_alpha_and_outlined():
    image = gray_image()
    mask = np.zeros((120, 160), bool)
    mask[30:80, 50:120] = True
    out = draw_mask(image.copy(), mask, (0, 0, 250), alpha=0.4)
    assert out[50, 80].tolist() == [60, 60, 160]  # 100 * 0.6 + (0, 0, 250) * 0.4
    assert out[30, 80].min() > 200  # a (anti-aliased) white outline on the border
    assert not changed(out, image)[:25].any() and not changed(out, image)[:, :45].any()
    with pytest.raises(ValueError, match="mask shape"):
        draw_mask(image.copy(), mask[:10], (0, 0, 250))


def test_vis_draws_masks_and_keypoints():
    image = gray_image()
    masks = np.zeros((1, 120, 160), bool)
    masks[0, 60:100, 20:60] = True
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, :, 0] = np.linspace(90, 150, 17)
    keypoints[0, :, 1] = np.linspace(20, 110, 17)
    keypoints[0, :, 2] = 5.0
    keypoints[0, 16, 2] = 0.0  # below kp_thresh: not drawn
    boxes = np.array([[20.0, 60.0, 59.0, 99.0]])
    out = vis_one_image(
        image, boxes, np.array([0.99]), np.array([1]), ["bg", "person"], masks=masks, keypoints=keypoints,
        keypoint_names=COCO_KEYPOINT_NAMES, thresh=0.5, kp_thresh=2.0,
    )  # fmt: skip
    diff = changed(out, image)
    assert diff[70:90, 30:50].all()  # the mask interior is tinted
    for x, y in keypoints[0, :16, :2]:
        assert diff[int(round(y)), int(round(x))], (x, y)
    x, y = keypoints[0, 16, :2]
    assert not diff[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2].any()


def test_keypoint_limbs():
    limbs = keypoint_limbs(COCO_KEYPOINT_NAMES)
    assert len(limbs) == 15 and (1, 2) in limbs  # left_eye - right_eye
    assert keypoint_limbs(["top", "left", "right"], skeleton=[[1, 2], [2, 3]]) == [(0, 1), (1, 2)]
    assert keypoint_limbs(["a", "b"]) == [] and keypoint_limbs(None) == []


def test_colormap_is_distinct_and_bad_inputs_are_named():
    colors = colormap(12)
    assert colors.shape == (12, 3) and len({tuple(c) for c in colors}) == 12
    image = gray_image()
    with pytest.raises(ValueError, match="differ in length"):
        vis_one_image(image, np.zeros((2, 4)), np.zeros(1), np.zeros(2))
    with pytest.raises(ValueError, match="masks has 1 entries for 2 boxes"):
        vis_one_image(image, np.zeros((2, 4)), np.zeros(2), np.zeros(2), masks=np.zeros((1, 120, 160), bool))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        vis_one_image(image.astype(np.float32), np.zeros((0, 4)), np.zeros(0), np.zeros(0))
