"""Minibatches: Detectron's scaling rule, normalisation, flip, padding, targets, cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_test_fixtures import basic_coco, keypoint_coco, square, write_png_dataset
from pycocotools import mask as mask_util

from pydetectron.data import (
    RoidbDataset,
    SampleKey,
    collate_minibatch,
    compute_scale,
    load_coco_roidb,
)

MEANS = (102.9801, 115.9465, 122.7717)


@pytest.fixture
def roidb(tmp_path):
    json_file, image_dir = write_png_dataset(tmp_path / "d", basic_coco())
    return load_coco_roidb(json_file, image_dir).with_flipped()


def _raw(roidb, index):
    return cv2.imread(roidb.image_path(index))


@pytest.mark.parametrize(
    "h, w, target, max_size, expected",
    [
        (480, 640, 800, 1333, 800 / 480),
        (300, 1000, 800, 1333, 1333 / 1000),  # long side capped
        (600, 1000, 800, 1333, 800 / 600),  # 1333.3 rounds to 1333: not over the cap
        (601, 1000, 600, 1000, 600 / 601),
        (601, 1000, 800, 1000, 1.0),
        (80, 100, 40, 1000, 0.5),
    ],
)
def test_compute_scale_follows_detectron(h, w, target, max_size, expected):
    assert compute_scale(h, w, target, max_size) == pytest.approx(expected, rel=1e-12)


def test_image_matches_float64_reference(roidb):
    dataset = RoidbDataset(roidb, scales=(120,), max_size=1000, pixel_means=MEANS)
    sample = dataset[SampleKey(0)]
    raw = _raw(roidb, 0).astype(np.float64)  # 80 x 100, BGR
    ref = torch.from_numpy((raw - np.array(MEANS)).transpose(2, 0, 1))[None]
    ref = F.interpolate(ref, scale_factor=1.5, mode="bilinear", align_corners=False)[0]
    assert sample["image"].dtype == torch.float32
    assert tuple(sample["image"].shape) == (3, 120, 150)
    torch.testing.assert_close(sample["image"].double(), ref, atol=2e-3, rtol=0)
    torch.testing.assert_close(sample["im_info"], torch.tensor([120.0, 150.0, 1.5]))
    assert sample["image_id"] == 10 and sample["index"] == 0 and not sample["flipped"]


def test_rgb_and_std_normalisation(roidb):
    means, stds = (1.0, 2.0, 3.0), (2.0, 4.0, 8.0)
    dataset = RoidbDataset(
        roidb, scales=(80,), max_size=1000, pixel_means=means, pixel_stds=stds, input_format="RGB"
    )
    image = dataset[0]["image"].numpy()
    raw = _raw(roidb, 0).astype(np.float64)
    for c in range(3):  # channel c of the input is RGB channel c = BGR channel 2 - c
        expected = (raw[:, :, 2 - c] - means[c]) / stds[c]
        np.testing.assert_allclose(image[c], expected, rtol=1e-6, atol=1e-5)


def test_flipped_entry_mirrors_image_and_targets(roidb):
    dataset = RoidbDataset(roidb, scales=(160,), max_size=1000, pixel_means=MEANS)
    plain, flipped = dataset[0], dataset[3]
    assert flipped["flipped"] and flipped["image_id"] == plain["image_id"]
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1), atol=1e-4, rtol=0)
    scale = 2.0  # 160 / 80
    boxes = roidb[3]["boxes"] * scale
    torch.testing.assert_close(flipped["targets"].boxes, torch.from_numpy(boxes))
    # mirrored about the scaled image: (W - 1 - x) * s
    torch.testing.assert_close(
        flipped["targets"].boxes[0], torch.tensor([60.0, 20.0, 89.0, 59.0]) * scale
    )


def test_targets_scaled_with_polygons(roidb):
    dataset = RoidbDataset(
        roidb, scales=(40,), max_size=1000, pixel_means=MEANS, mask_format="polygon"
    )
    targets = dataset[0]["targets"]
    entry = roidb[0]
    torch.testing.assert_close(targets.boxes, torch.from_numpy(entry["boxes"] * 0.5))
    assert targets.classes.dtype == torch.int64
    assert targets.classes.tolist() == [1, 2, 2, 1]
    assert targets.is_crowd.tolist() == [False, False, False, True]
    polys = targets.masks
    assert len(polys) == 4
    torch.testing.assert_close(torch.from_numpy(polys.polygons(0)[0]), torch.tensor(square(10, 20, 30)) * 0.5)
    # the crowd RLE becomes the outline of its mask (columns 2-3, rows 45-54), scaled
    outline = torch.from_numpy(polys.polygons(3)[0]).view(-1, 2)
    assert outline[:, 0].min() == 1.0 and outline[:, 1].max() == 27.0


def test_bitmap_masks(roidb):
    dataset = RoidbDataset(
        roidb, scales=(160,), max_size=1000, pixel_means=MEANS, mask_format="bitmap"
    )
    sample = dataset[3]  # flipped
    masks = sample["targets"].masks
    assert masks.dtype == torch.uint8 and tuple(masks.shape) == (4, 160, 200)
    # the reference: pycocotools mask of the original annotation, mirrored, upscaled
    rle = mask_util.frPyObjects([square(10, 20, 30)], 80, 100)
    original = mask_util.decode(rle)[:, :, 0][:, ::-1]
    ref = cv2.resize(np.ascontiguousarray(original), (200, 160), interpolation=cv2.INTER_NEAREST)
    inter = np.logical_and(ref, masks[0].numpy()).sum()
    union = np.logical_or(ref, masks[0].numpy()).sum()
    assert inter / union > 0.9
    crowd_ref = cv2.resize(
        np.ascontiguousarray(mask_util.decode(roidb[0]["segms"][3])[:, ::-1]),
        (200, 160),
        interpolation=cv2.INTER_NEAREST,
    )
    np.testing.assert_array_equal(masks[3].numpy(), crowd_ref)


def test_keypoint_targets(tmp_path):
    json_file, image_dir = write_png_dataset(tmp_path / "k", keypoint_coco())
    roidb = load_coco_roidb(json_file, image_dir).with_flipped()
    dataset = RoidbDataset(roidb, scales=(60,), max_size=1000, pixel_means=MEANS, keypoints=True)
    kps = dataset[0]["targets"].keypoints  # [N, K, 3], scale 2
    expected = torch.tensor([[20.0, 24.0, 2.0], [16.0, 18.0, 1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(kps[0], expected)
    flipped = dataset[1]["targets"].keypoints[0]
    expected = torch.tensor([[58.0, 24.0, 2.0], [0.0, 0.0, 0.0], [62.0, 18.0, 1.0]])
    torch.testing.assert_close(flipped, expected)


def test_scale_index_from_the_key(roidb):
    dataset = RoidbDataset(roidb, scales=(40, 80, 160), max_size=1000, pixel_means=MEANS)
    for scale_index, expected in enumerate((0.5, 1.0, 2.0)):
        im_info = dataset[SampleKey(0, scale_index, 0)]["im_info"]
        assert im_info[2].item() == pytest.approx(expected)
        assert im_info[0].item() == 80 * expected


def test_collate_pads_to_the_stride(roidb):
    dataset = RoidbDataset(roidb, scales=(90,), max_size=1000, pixel_means=MEANS)
    samples = [dataset[0], dataset[1]]  # 100 x 80 -> 112 x 90, 60 x 90 -> 90 x 135 (W x H)
    batch = collate_minibatch(samples, size_divisibility=32)
    data = batch["data"]
    assert tuple(data.shape) == (2, 3, 160, 128)
    for i, s in enumerate(samples):
        _, h, w = s["image"].shape
        torch.testing.assert_close(data[i, :, :h, :w], s["image"])
        assert data[i, :, h:, :].abs().sum() == 0 and data[i, :, :, w:].abs().sum() == 0
    torch.testing.assert_close(batch["im_info"], torch.stack([s["im_info"] for s in samples]))
    assert batch["image_ids"].tolist() == [10, 20]
    assert batch["indices"].tolist() == [0, 1]
    assert len(batch["targets"]) == 2
    unpadded = collate_minibatch(samples, size_divisibility=0)["data"]
    assert tuple(unpadded.shape) == (2, 3, 135, 112)


def test_aspect_cropping_wide_image(tmp_path):
    data = {
        "images": [{"id": 1, "file_name": "wide.png", "width": 300, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
             "iscrowd": 0, "segmentation": [square(10, 10, 40)]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [120, 30, 30, 30], "area": 900,
             "iscrowd": 0, "segmentation": [square(120, 30, 30)]},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    json_file, image_dir = write_png_dataset(tmp_path / "w", data)
    roidb = load_coco_roidb(json_file, image_dir)
    dataset = RoidbDataset(
        roidb, scales=(100,), max_size=1000, pixel_means=(0, 0, 0), aspect_cropping=True,
        aspect_hi=2.0, aspect_lo=0.5, mask_format="bitmap",
    )
    raw = _raw(roidb, 0).astype(np.float32)
    starts = set()
    for seed in range(12):
        sample = dataset[SampleKey(0, 0, seed)]
        image = sample["image"].numpy().transpose(1, 2, 0)
        assert image.shape == (100, 200, 3)
        assert sample["im_info"].tolist() == [100.0, 200.0, 1.0]
        x0 = int(np.argmin([np.abs(raw[:, s : s + 200] - image).max() for s in range(101)]))
        np.testing.assert_array_equal(raw[:, x0 : x0 + 200], image)
        starts.add(x0)
        # both boxes (x 10..149) fit in 200 px: the window keeps them whole
        assert x0 <= 10
        boxes = sample["targets"].boxes.numpy()
        expected = [[10 - x0, 10, 49 - x0, 49], [120 - x0, 30, 149 - x0, 59]]
        np.testing.assert_array_equal(boxes, expected)
        assert tuple(sample["targets"].masks.shape) == (2, 100, 200)
    assert len(starts) > 1  # the window position is random (from the key's seed)
