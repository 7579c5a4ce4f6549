"""RetinaNet inference against Detectron's im_detect_bbox (float64 reference) and torchvision's
postprocess_detections."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.detection.retinanet import RetinaNet as TorchvisionRetinaNet
from torchvision.models.detection.transform import resize_boxes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retinanet_reference import detectron_detect  # noqa: E402

from pydetectron.modeling import ImageInfo  # noqa: E402
from pydetectron.modeling.retinanet import RetinaNetPostProcessor, retinanet_anchor_generator  # noqa: E402
from pydetectron.modeling.roi_heads.box_postprocess import SoftNMSSettings  # noqa: E402

LEVELS = [3, 4, 5]
SHAPES = [(8, 10), (4, 5), (2, 3)]
IMAGES = [ImageInfo(60.0, 80.0, 0.75, 80, 107), ImageInfo(64.0, 48.0, 2.0, 32, 24)]


def head_outputs(num_logits, box_dim, num_anchors=9, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(2, num_anchors * num_logits, h, w, generator=g, dtype=dtype) * 2 - 3 for h, w in SHAPES]
    deltas = [torch.randn(2, num_anchors * box_dim, h, w, generator=g, dtype=dtype) * 0.2 for h, w in SHAPES]
    return logits, deltas


def rows(t: torch.Tensor, num_per_row: int) -> np.ndarray:
    """[N, A * X, H, W] -> [N, H * W * A, X] (location-major, then anchor)."""
    n, c, h, w = t.shape
    return (
        t.numpy().reshape(n, c // num_per_row, num_per_row, h, w).transpose(0, 3, 4, 1, 2).reshape(n, -1, num_per_row)
    )


def detectron_anchors(dtype=torch.float64):
    generator = retinanet_anchor_generator(LEVELS, 4, 3, (1.0, 2.0, 0.5), convention="detectron")
    return generator(SHAPES, torch.device("cpu"), dtype)


def check_against_reference(detections, probs, deltas, anchors, nms, th, pre_nms, limit):
    for image, (det, info) in enumerate(zip(detections, IMAGES)):
        expected = detectron_detect(
            [p[image] for p in probs],
            [d[image] for d in deltas],
            [a.numpy() for a in anchors],
            info.scale,
            (info.original_height, info.original_width),
            nms,
            th,
            pre_nms,
            limit,
        )
        assert len(det) == len(expected) > 5
        np.testing.assert_array_equal(det.classes.numpy(), expected[:, 5])
        np.testing.assert_allclose(det.scores.numpy(), expected[:, 4], rtol=0, atol=1e-12)
        np.testing.assert_allclose(det.boxes.numpy(), expected[:, :4], rtol=0, atol=1e-9)
        np.testing.assert_allclose(det.input_boxes.numpy(), expected[:, :4] * info.scale, rtol=0, atol=1e-9)


def test_detectron_sigmoid_inference_matches_reference():
    num_classes = 6
    post = RetinaNetPostProcessor(
        num_classes,
        score_thresh=0.05,
        coarsest_score_thresh=0.0,
        pre_nms_top_n=40,
        nms_thresh=0.5,
        detections_per_image=25,
        plus_one=True,
        output_space="original",
    )
    logits, deltas = head_outputs(num_classes - 1, 4)
    anchors = detectron_anchors()
    detections = post(logits, deltas, anchors, IMAGES)
    probs = [1 / (1 + np.exp(-rows(x, num_classes - 1))) for x in logits]
    check_against_reference(detections, probs, [rows(d, 4) for d in deltas], anchors, 0.5, 0.05, 40, 25)


def test_detectron_softmax_class_specific_inference_matches_reference():
    num_classes = 4
    post = RetinaNetPostProcessor(
        num_classes,
        softmax=True,
        class_specific_bbox=True,
        score_thresh=0.1,
        pre_nms_top_n=30,
        nms_thresh=0.4,
        detections_per_image=100,
    )
    logits, deltas = head_outputs(num_classes, 4 * (num_classes - 1), seed=2)
    anchors = detectron_anchors()
    detections = post(logits, deltas, anchors, IMAGES)
    probs = []
    for x in logits:
        r = rows(x, num_classes)
        e = np.exp(r - r.max(axis=2, keepdims=True))
        probs.append((e / e.sum(axis=2, keepdims=True))[..., 1:])
    check_against_reference(
        detections, probs, [rows(d, 4 * (num_classes - 1)) for d in deltas], anchors, 0.4, 0.1, 30, 100
    )


class _NoBackbone(nn.Module):
    out_channels = 8


def test_torchvision_inference_matches_postprocess_detections():
    num_classes = 7  # torchvision's layout: logit 0 is background
    logits, deltas = head_outputs(num_classes, 4, seed=4, dtype=torch.float32)
    with torch.no_grad():
        for x in logits:
            x.view(2, 9, num_classes, *x.shape[-2:])[:, :, 0] = -30.0  # background never scores
    image_size = (64, 96)  # padded batch
    generator = retinanet_anchor_generator(LEVELS, 4, 3, (0.5, 1.0, 2.0), convention="torchvision")
    anchors = generator(SHAPES, torch.device("cpu"), torch.float32, image_size=image_size)
    images = [ImageInfo(60.0, 80.0, 0.75, 80, 107), ImageInfo(64.0, 48.0, 2.0, 32, 24)]
    post = RetinaNetPostProcessor(
        num_classes,
        background_logit=True,
        score_thresh=0.05,
        coarsest_score_thresh=0.05,
        pre_nms_top_n=40,
        nms_thresh=0.5,
        detections_per_image=30,
        plus_one=False,
        output_space="input",
    )
    detections = post(logits, deltas, anchors, images)
    tv = TorchvisionRetinaNet(
        _NoBackbone(),
        num_classes,
        head=nn.Identity(),
        topk_candidates=40,
        detections_per_img=30,
        score_thresh=0.05,
        nms_thresh=0.5,
    )
    split = {
        "cls_logits": [torch.from_numpy(rows(x, num_classes)) for x in logits],
        "bbox_regression": [torch.from_numpy(rows(d, 4)) for d in deltas],
    }
    expected = tv.postprocess_detections(split, [anchors, anchors], [(60, 80), (64, 48)])
    for det, exp, info in zip(detections, expected, images):
        assert len(det) == len(exp["scores"]) > 5
        boxes = resize_boxes(
            exp["boxes"], (int(info.height), int(info.width)), (info.original_height, info.original_width)
        )
        torch.testing.assert_close(det.scores, exp["scores"], rtol=0, atol=0)
        assert torch.equal(det.classes, exp["labels"])
        torch.testing.assert_close(det.boxes, boxes, rtol=0, atol=1e-4)
        torch.testing.assert_close(det.input_boxes, exp["boxes"], rtol=0, atol=0)


def test_anchors_as_boxes_soft_nms_and_no_candidates():
    num_classes = 3
    logits, deltas = head_outputs(num_classes - 1, 4, seed=6)
    anchors = detectron_anchors()
    plain = RetinaNetPostProcessor(num_classes, apply_bbox_reg=False, score_thresh=0.2, coarsest_score_thresh=0.2)
    (det, _) = plain(logits, deltas, anchors, IMAGES)
    # without regression the boxes are anchors, scaled to the original image and clipped to it
    scaled = torch.cat(anchors) / IMAGES[0].scale
    scaled[:, 0::2] = scaled[:, 0::2].clamp(0, IMAGES[0].original_width - 1)
    scaled[:, 1::2] = scaled[:, 1::2].clamp(0, IMAGES[0].original_height - 1)
    assert len(det) > 0
    for box in det.boxes:
        assert (scaled - box).abs().max(dim=1).values.min() < 1e-9
    soft = RetinaNetPostProcessor(num_classes, soft_nms=SoftNMSSettings(True, "linear", 0.5, 0.3, 1e-4))
    hard = RetinaNetPostProcessor(num_classes, nms_thresh=0.3)
    (s, _), (h, _) = soft(logits, deltas, anchors, IMAGES), hard(logits, deltas, anchors, IMAGES)
    assert len(s) >= len(h) and torch.equal(s.boxes[0], h.boxes[0]) and s.scores[0] == h.scores[0]
    silent = RetinaNetPostProcessor(num_classes, score_thresh=0.999, coarsest_score_thresh=0.999)
    assert all(len(d) == 0 and d.boxes.shape == (0, 4) for d in silent(logits, deltas, anchors, IMAGES))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="output_space"):
        RetinaNetPostProcessor(3, output_space="padded")
    post = RetinaNetPostProcessor(3)
    logits, deltas = head_outputs(2, 4)
    with pytest.raises(ValueError, match="one cls_logits, bbox_pred and anchor tensor per level"):
        post(logits, deltas, detectron_anchors()[:2], IMAGES)
    with pytest.raises(ValueError, match="anchor rows"):
        post(logits, deltas, detectron_anchors()[::-1], IMAGES)
