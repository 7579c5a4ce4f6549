"""Every config builds; one config per distinct model trains one step and runs inference."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.modeling.generalized_rcnn import GeneralizedRCNN
from pydetectron.modeling.model_builder import build_model
from pydetectron.structures.ground_truth import GroundTruth
from pydetectron.structures.polygon_masks import PolygonMasks

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL_CONFIGS = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
# One config per distinct model (other schedules build the same networks).
MODEL_CONFIGS = [
    "baselines/e2e_faster_rcnn_R-50-C4_1x.yaml",
    "baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml",
    "baselines/e2e_faster_rcnn_R-101-FPN_1x.yaml",
    "baselines/e2e_faster_rcnn_X-101-64x4d-FPN_1x.yaml",
    "baselines/e2e_faster_rcnn_X-101-32x8d-FPN_1x.yaml",
    "baselines/e2e_mask_rcnn_R-50-C4_1x.yaml",
    "baselines/e2e_mask_rcnn_R-50-FPN_1x.yaml",
    "baselines/e2e_mask_rcnn_R-101-FPN_1x.yaml",
    "baselines/e2e_mask_rcnn_X-101-64x4d-FPN_1x.yaml",
    "baselines/e2e_mask_rcnn_X-101-32x8d-FPN_1x.yaml",
    "baselines/e2e_mask_rcnn_X-152-32x8d-FPN-IN5k_1.44x.yaml",
    "baselines/e2e_keypoint_rcnn_R-50-FPN_1x.yaml",
    "baselines/e2e_keypoint_rcnn_R-101-FPN_1x.yaml",
    "baselines/e2e_keypoint_rcnn_X-101-64x4d-FPN_1x.yaml",
    "baselines/e2e_keypoint_rcnn_X-101-32x8d-FPN_1x.yaml",
    "gn_baselines/e2e_mask_rcnn_R-50-FPN_2x_gn.yaml",
    "gn_baselines/e2e_mask_rcnn_R-101-FPN_2x_gn.yaml",
    "gn_baselines/scratch_e2e_mask_rcnn_R-50-FPN_3x_gn.yaml",
    "getting_started/tutorial_1gpu_e2e_faster_rcnn_R-50-FPN.yaml",
    "torchvision/fasterrcnn_resnet50_fpn.yaml",
    "torchvision/maskrcnn_resnet50_fpn.yaml",
    "torchvision/keypointrcnn_resnet50_fpn.yaml",
    "shapes/e2e_faster_rcnn_R-50-FPN_shapes.yaml",
    "shapes/e2e_mask_rcnn_R-50-FPN_shapes.yaml",
    "shapes/e2e_keypoint_rcnn_R-50-FPN_shapes.yaml",
    "toolbox/shapes_mask_rcnn_vovnet19_slim_ese_fpn.yaml",
    "toolbox/shapes_mask_rcnn_convnextv2_a_fpn.yaml",
    "toolbox/shapes_mask_rcnn_vit_ti16_simple_fpn.yaml",
]
SMALL = ["TRAIN.BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "300", "TRAIN.RPN_POST_NMS_TOP_N", "100",
         "TEST.RPN_PRE_NMS_TOP_N", "300", "TEST.RPN_POST_NMS_TOP_N", "50", "TEST.SCORE_THRESH", "0.0",
         "KRCNN.MIN_KEYPOINT_COUNT_FOR_VALID_MINIBATCH", "0"]  # fmt: skip


def load(name: str, extra: list[str] | None = None):
    cfg = get_cfg()
    merge_cfg_from_file(CONFIGS / name, target=cfg)
    merge_cfg_from_list(SMALL + (extra or []), target=cfg)
    if cfg.MODEL.NUM_CLASSES < 0:
        cfg.MODEL.NUM_CLASSES = 6
    assert_and_infer_cfg(target=cfg)
    return cfg


def _square(x1, y1, x2, y2):
    return [np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float32)]


def small_batch(num_classes: int, num_keypoints: int):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 128, 160, generator=g) * 50
    im_info = torch.tensor([[128.0, 160.0, 1.0], [96.0, 160.0, 0.5]])
    boxes = [torch.tensor([[10.0, 12.0, 70.0, 90.0], [80.0, 20.0, 150.0, 60.0]]), torch.tensor([[30.0, 30, 100, 80]])]
    targets = []
    for image, image_boxes in enumerate(boxes):
        count = len(image_boxes)
        keypoints = None
        if num_keypoints > 0:
            frac = torch.rand(count, num_keypoints, 2, generator=g)
            xy = image_boxes[:, None, :2] + frac * (image_boxes[:, None, 2:] - image_boxes[:, None, :2])
            keypoints = torch.cat([xy, torch.full((count, num_keypoints, 1), 2.0)], dim=2)
        targets.append(
            GroundTruth(
                image_boxes,
                (torch.arange(count) + image) % (num_classes - 1) + 1,
                masks=PolygonMasks.from_lists([_square(*b.tolist()) for b in image_boxes]),
                keypoints=keypoints,
            )
        )
    return images, im_info, targets


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_config_builds(name):
    if name.startswith("torchvision/") or name.startswith("shapes/"):
        pytest.skip("built and run below")
    if "retinanet" in name:
        pytest.skip("RetinaNet configs are built and run in tests/modeling/retinanet")
    cfg = load(name)
    model = build_model(cfg)
    assert isinstance(model, GeneralizedRCNN)
    assert ("mask" in model.roi_heads.branches) == bool(cfg.MODEL.MASK_ON)
    assert ("keypoint" in model.roi_heads.branches) == bool(cfg.MODEL.KEYPOINTS_ON)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_config_trains_one_step_and_detects(name):
    torch.manual_seed(0)
    cfg = load(name)
    model = build_model(cfg)
    images, im_info, targets = small_batch(cfg.MODEL.NUM_CLASSES, cfg.KRCNN.NUM_KEYPOINTS)
    model.train()
    losses = model(images, im_info, targets)
    expected = {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls"}
    expected |= {"loss_mask"} if cfg.MODEL.MASK_ON else set()
    expected |= {"loss_kps"} if cfg.MODEL.KEYPOINTS_ON else set()
    assert set(losses) == expected
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    assert torch.isfinite(total)
    total.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in model.roi_heads.box.outputs.parameters())
    for branch in model.roi_heads.branches.values():
        assert all(p.grad is not None for p in branch.outputs.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    model.eval()
    with torch.no_grad():
        detections = model(images, im_info, original_sizes=[(128, 160), (192, 320)])
    assert len(detections) == 2
    for det, (h, w) in zip(detections, [(128, 160), (192, 320)]):
        assert det.boxes.shape[1] == 4 and det.scores.shape == det.classes.shape
        assert det.scores.numel() <= cfg.TEST.DETECTIONS_PER_IM
        assert (det.classes >= 1).all() and (det.classes < cfg.MODEL.NUM_CLASSES).all()
        assert (det.boxes[:, 0::2] >= 0).all() and (det.boxes[:, 2] <= w).all() and (det.boxes[:, 3] <= h).all()
        if cfg.MODEL.MASK_ON:
            assert det.masks.shape == (len(det), h, w) and det.masks.dtype == torch.bool
        if cfg.MODEL.KEYPOINTS_ON:
            assert det.keypoints.shape == (len(det), cfg.KRCNN.NUM_KEYPOINTS, 3)


def test_rpn_only_model_returns_proposals():
    cfg = load("baselines/e2e_faster_rcnn_R-50-C4_1x.yaml", ["MODEL.FASTER_RCNN", "False", "MODEL.RPN_ONLY", "True"])
    model = build_model(cfg)
    assert model.rpn_only and model.roi_heads is None
    images, im_info, targets = small_batch(6, 0)
    losses = model.train()(images[:1], im_info[:1], targets[:1])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    with torch.no_grad():
        (det,) = model.eval()(images[:1], im_info[:1])
    assert 0 < det.boxes.shape[0] <= 50


def test_unsupported_settings_are_named():
    cfg = load("baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml")
    cfg.immutable(False)
    cfg.MODEL.MASK_ON = True
    cfg.MRCNN.ROI_MASK_HEAD = "mask_rcnn_heads.mask_rcnn_fcn_head_v1up5convs"
    with pytest.raises(KeyError, match="mask_rcnn_fcn_head_v1up4convs"):
        build_model(cfg)
    cfg.MRCNN.ROI_MASK_HEAD = "mask_rcnn_heads.mask_rcnn_fcn_head_v0upshare"
    with pytest.raises(ValueError, match="shares res5 with the box head"):
        build_model(cfg)
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.KEYPOINTS_ON = True
    with pytest.raises(ValueError, match="KRCNN.NUM_KEYPOINTS"):
        build_model(cfg)
    cfg.MODEL.KEYPOINTS_ON = False
    cfg.FAST_RCNN.ROI_BOX_HEAD = "fast_rcnn_heads.roi_3mlp_head"
    with pytest.raises(KeyError, match="roi_2mlp_head"):
        build_model(cfg)
    cfg.FAST_RCNN.ROI_BOX_HEAD = "head_builder.add_roi_2mlp_head"  # an early Detectron name
    assert build_model(cfg).roi_heads.box.head.dim_out == 1024


def test_freeze_conv_body_trains_the_heads_only():
    torch.manual_seed(0)
    cfg = load("shapes/e2e_mask_rcnn_R-50-FPN_shapes.yaml", ["TRAIN.FREEZE_CONV_BODY", "True"])
    model = build_model(cfg)
    assert not any(p.requires_grad for p in model.body.parameters())
    images, im_info, targets = small_batch(cfg.MODEL.NUM_CLASSES, 0)
    losses = model.train()(images, im_info, targets)
    sum(v for k, v in losses.items() if k.startswith("loss")).backward()
    assert all(p.grad is None for p in model.body.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.rpn.parameters())
