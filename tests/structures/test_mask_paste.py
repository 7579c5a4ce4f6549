"""Mask paste-back against Detectron's segm_results (OpenCV) and torchvision's paste_masks_in_image."""

import cv2
import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from pydetectron.structures.mask_paste import paste_masks


def detectron_paste(mask: np.ndarray, box: np.ndarray, height: int, width: int, thresh: float) -> np.ndarray:
    """Detectron's core/test.py segm_results for one mask (the reference, with OpenCV)."""
    size = mask.shape[0]
    scale = (size + 2.0) / size
    w_half, h_half = (box[2] - box[0]) * 0.5 * scale, (box[3] - box[1]) * 0.5 * scale
    x_c, y_c = (box[2] + box[0]) * 0.5, (box[3] + box[1]) * 0.5
    ref = np.array([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half]).astype(np.int32)
    padded = np.zeros((size + 2, size + 2), np.float32)
    padded[1:-1, 1:-1] = mask
    w = max(ref[2] - ref[0] + 1, 1)
    h = max(ref[3] - ref[1] + 1, 1)
    resized = cv2.resize(padded, (w, h)) > thresh
    out = np.zeros((height, width), bool)
    x0, x1 = max(ref[0], 0), min(ref[2] + 1, width)
    y0, y1 = max(ref[1], 0), min(ref[3] + 1, height)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = resized[y0 - ref[1] : y1 - ref[1], x0 - ref[0] : x1 - ref[0]]
    return out


def test_hand_computed_full_mask_fills_its_expanded_box():
    # a 2x2 all-ones mask in box (4, 4, 8, 8): padded to 4x4, the box expanded by 4/2 to
    # (2, 2, 10, 10), so 9x9 pixels. Along one axis the resized values are
    # [0, 1/6, 11/18, 1, 1, 1, 11/18, 1/6, 0]: pixels 2..6 of the window pass 0.5 except the
    # four corners (11/18 squared < 0.5)
    masks = torch.ones((1, 2, 2))
    got = paste_masks(masks, torch.tensor([[4.0, 4.0, 8.0, 8.0]]), 12, 12)[0]
    expected = torch.zeros((12, 12), dtype=torch.bool)
    expected[4:9, 4:9] = True
    for y, x in ((4, 4), (4, 8), (8, 4), (8, 8)):
        expected[y, x] = False
    assert torch.equal(got, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_detectron_opencv_paste(seed):
    rng = np.random.default_rng(seed)
    height, width, size = 97, 131, 28
    probs = rng.uniform(0, 1, size=(12, size, size)).astype(np.float32)
    probs = cv2.GaussianBlur(probs.transpose(1, 2, 0), (5, 5), 2).transpose(2, 0, 1).copy()  # smooth masks
    boxes = []
    for _ in range(12):
        x1, y1 = rng.uniform(-20, 110), rng.uniform(-20, 80)
        boxes.append([x1, y1, x1 + rng.uniform(0.5, 70), y1 + rng.uniform(0.5, 60)])
    boxes = np.array(boxes, np.float32)
    got = paste_masks(torch.from_numpy(probs), torch.from_numpy(boxes), height, width, 0.5).numpy()
    for i in range(len(boxes)):
        expected = detectron_paste(probs[i], boxes[i], height, width, 0.5)
        differing = (got[i] != expected).sum()
        assert differing <= max(2, 0.002 * expected.sum()), (i, differing, expected.sum())


def test_matches_torchvision_paste_masks_in_image():
    torch.manual_seed(0)
    probs = torch.rand(20, 28, 28)
    xy = torch.rand(20, 2) * torch.tensor([100.0, 60.0]) + 5  # torchvision's paste needs boxes inside the image
    boxes = torch.cat([xy, xy + torch.rand(20, 2) * 80 + 1], dim=1)
    expected = paste_masks_in_image(probs[:, None], boxes, (150, 200), padding=1)[:, 0] > 0.5
    got = paste_masks(probs, boxes, 150, 200, 0.5)
    assert (got != expected).sum() <= 5  # float rounding at exactly-0.5 pixels only
    assert paste_masks(probs[:0], boxes[:0], 150, 200).shape == (0, 150, 200)


def test_chunks_of_many_large_masks_agree_with_one_at_a_time():
    torch.manual_seed(1)
    probs = torch.rand(30, 14, 14)
    boxes = torch.tensor([[0.0, 0.0, 1300.0, 900.0]]).repeat(30, 1) - torch.rand(30, 1) * 20
    together = paste_masks(probs, boxes, 900, 1300)
    alone = torch.stack([paste_masks(probs[i : i + 1], boxes[i : i + 1], 900, 1300)[0] for i in range(30)])
    assert torch.equal(together, alone)
