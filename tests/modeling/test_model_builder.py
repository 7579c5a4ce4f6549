"""Every Faster R-CNN config builds, trains one step and runs inference on a small image."""

from pathlib import Path

import pytest
import torch

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.modeling.generalized_rcnn import GeneralizedRCNN
from pydetectron.modeling.model_builder import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# One config per distinct model (the 2x schedules build the same networks as their 1x).
MODEL_CONFIGS = [
    "baselines/e2e_faster_rcnn_R-50-C4_1x.yaml",
    "baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml",
    "baselines/e2e_faster_rcnn_R-101-FPN_1x.yaml",
    "baselines/e2e_faster_rcnn_X-101-64x4d-FPN_1x.yaml",
    "baselines/e2e_faster_rcnn_X-101-32x8d-FPN_1x.yaml",
    "getting_started/tutorial_1gpu_e2e_faster_rcnn_R-50-FPN.yaml",
    "torchvision/fasterrcnn_resnet50_fpn.yaml",
]
SMALL = ["TRAIN.BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "300", "TRAIN.RPN_POST_NMS_TOP_N", "100",
         "TEST.RPN_PRE_NMS_TOP_N", "300", "TEST.RPN_POST_NMS_TOP_N", "50", "TEST.SCORE_THRESH", "0.0"]


def load(name: str, extra: list[str] | None = None):
    cfg = get_cfg()
    merge_cfg_from_file(CONFIGS / name, target=cfg)
    merge_cfg_from_list(SMALL + (extra or []), target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


def small_batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 128, 160, generator=g) * 50
    im_info = torch.tensor([[128.0, 160.0, 1.0], [96.0, 160.0, 0.5]])
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 70.0, 90.0], [80.0, 20.0, 150.0, 60.0]]),
            "gt_classes": torch.tensor([1, 5]),
        },
        {"boxes": torch.tensor([[30.0, 30.0, 100.0, 80.0]]), "gt_classes": torch.tensor([3]),
         "is_crowd": torch.tensor([False])},
    ]
    return images, im_info, targets


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_config_trains_one_step_and_detects(name):
    torch.manual_seed(0)
    cfg = load(name)
    model = build_model(cfg)
    assert isinstance(model, GeneralizedRCNN)
    images, im_info, targets = small_batch()
    model.train()
    losses = model(images, im_info, targets)
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls"} <= set(losses)
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    assert torch.isfinite(total)
    total.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in model.box_outputs.parameters())
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


def test_rpn_only_model_returns_proposals():
    cfg = load("baselines/e2e_faster_rcnn_R-50-C4_1x.yaml", ["MODEL.FASTER_RCNN", "False", "MODEL.RPN_ONLY", "True"])
    model = build_model(cfg)
    assert model.rpn_only and model.box_head is None
    images, im_info, targets = small_batch()
    losses = model.train()(images[:1], im_info[:1], targets[:1])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    with torch.no_grad():
        (det,) = model.eval()(images[:1], im_info[:1])
    assert 0 < det.boxes.shape[0] <= 50


def test_unsupported_settings_are_named():
    cfg = load("baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml")
    cfg.immutable(False)
    cfg.MODEL.MASK_ON = True
    with pytest.raises(ValueError, match="MODEL.MASK_ON"):
        build_model(cfg)
    cfg.MODEL.MASK_ON = False
    cfg.FAST_RCNN.ROI_BOX_HEAD = "fast_rcnn_heads.roi_3mlp_head"
    with pytest.raises(KeyError, match="roi_2mlp_head"):
        build_model(cfg)
