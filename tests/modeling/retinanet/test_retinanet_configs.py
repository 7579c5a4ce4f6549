"""Every RetinaNet config builds a RetinaNet and runs a training step and inference on CPU;
the model type switches and unsupported settings give clear errors."""

from pathlib import Path

import pytest
import torch

from pydetectron.config import ConfigValueError, assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.modeling.model_builder import build_model
from pydetectron.modeling.retinanet import RetinaNet
from pydetectron.structures.ground_truth import GroundTruth

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
BASELINES = [
    f"baselines/retinanet_{body}_{schedule}.yaml"
    for body in ("R-50-FPN", "R-101-FPN", "X-101-64x4d-FPN", "X-101-32x8d-FPN")
    for schedule in ("1x", "2x")
]
RETINANET_CONFIGS = BASELINES + ["shapes/retinanet_R-50-FPN_shapes.yaml", "torchvision/retinanet_resnet50_fpn.yaml"]


def load(name: str, extra: list[str] | None = None):
    cfg = get_cfg()
    merge_cfg_from_file(CONFIGS / name, target=cfg)
    merge_cfg_from_list(extra or [], target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


def test_every_retinanet_config_exists():
    found = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("retinanet*.yaml")}
    assert found == set(RETINANET_CONFIGS)


@pytest.mark.parametrize("name", RETINANET_CONFIGS)
def test_config_builds_a_retinanet(name):
    cfg = load(name)
    assert cfg.RETINANET.RETINANET_ON and cfg.MODEL.TYPE == "retinanet"
    model = build_model(cfg)
    assert isinstance(model, RetinaNet)
    assert model.in_features == ["p3", "p4", "p5", "p6", "p7"]
    assert model.anchor_generator.num_anchors == [9] * 5
    foreground = cfg.MODEL.NUM_CLASSES - (0 if name.startswith("torchvision/") else 1)
    assert model.head.cls_logits.out_channels == 9 * foreground
    assert len(model.head.cls_tower) == len(model.head.bbox_tower) == 4


def test_2x_schedules_differ_from_1x_in_the_schedule_only():
    for name in BASELINES[1::2]:
        one, two = load(name.replace("_2x", "_1x")), load(name)
        differ = {key for key in one if one[key] != two[key]}
        assert differ == {"SOLVER"}, name
        assert {k for k in one.SOLVER if one.SOLVER[k] != two.SOLVER[k]} == {"MAX_ITER", "STEPS"}


def small_batch(num_classes: int):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 128, 128, generator=g) * 50
    im_info = torch.tensor([[128.0, 120.0, 1.0], [100.0, 128.0, 0.5]])
    targets = [
        GroundTruth(torch.tensor([[10.0, 12.0, 70.0, 90.0], [80.0, 20.0, 120.0, 60.0]]), torch.tensor([1, 2])),
        GroundTruth(torch.tensor([[30.0, 30.0, 100.0, 80.0]]), torch.tensor([num_classes - 1])),
    ]
    return images, im_info, targets


@pytest.fixture
def one_thread():
    """Full-size bodies on a busy 2-core machine run faster single-threaded."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
@pytest.mark.parametrize("name", RETINANET_CONFIGS)
def test_config_trains_one_step_and_detects(name, one_thread):
    torch.manual_seed(0)
    cfg = load(name, ["RETINANET.INFERENCE_TH", "0.0", "RETINANET.PRE_NMS_TOP_N", "50"])
    model = build_model(cfg)
    images, im_info, targets = small_batch(cfg.MODEL.NUM_CLASSES)
    losses = model.train()(images, im_info, targets)
    assert set(losses) == {"loss_retnet_cls", "loss_retnet_bbox", "retnet_fg_num", "retnet_bg_num"}
    assert losses["retnet_fg_num"] > 0
    total = losses["loss_retnet_cls"] + losses["loss_retnet_bbox"]
    assert torch.isfinite(total)
    total.backward()
    for module in (model.head.cls_logits, model.head.bbox_pred, model.head.cls_tower[0], model.head.bbox_tower[0]):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0
    with torch.no_grad():
        detections = model.eval()(images, im_info, original_sizes=[(128, 120), (200, 256)])
    assert len(detections) == 2
    for det, (h, w) in zip(detections, [(128, 120), (200, 256)]):
        assert 0 < len(det) <= cfg.TEST.DETECTIONS_PER_IM
        assert det.boxes.shape == (len(det), 4) and det.scores.shape == det.classes.shape
        assert (det.classes >= 1).all() and (det.classes < cfg.MODEL.NUM_CLASSES).all()
        assert (det.boxes[:, 0::2] >= 0).all() and (det.boxes[:, 2] <= w).all() and (det.boxes[:, 3] <= h).all()
        assert torch.all(det.scores[:-1] >= det.scores[1:])


def test_retinanet_switches():
    base = "baselines/retinanet_R-50-FPN_1x.yaml"
    only_flag = load(base, ["MODEL.TYPE", ""])
    assert isinstance(build_model(only_flag), RetinaNet)
    only_type = load(base, ["RETINANET.RETINANET_ON", "False"])
    assert only_type.RETINANET.RETINANET_ON  # inferred from MODEL.TYPE
    with pytest.raises(ConfigValueError, match="MODEL.TYPE: must be 'retinanet'.*got 'generalized_rcnn'"):
        load(base, ["MODEL.TYPE", "generalized_rcnn"])


def unchecked(name: str, extra: list[str]):
    """A config merged but not checked by assert_and_infer_cfg, as a caller of build_model may pass."""
    cfg = get_cfg()
    merge_cfg_from_file(CONFIGS / name, target=cfg)
    merge_cfg_from_list(extra, target=cfg)
    return cfg


@pytest.mark.parametrize(
    "extra,match",
    [
        (["MODEL.MASK_ON", "True"], "MODEL.MASK_ON: must be off"),
        (["MODEL.FASTER_RCNN", "True"], "MODEL.FASTER_RCNN: must be off"),
        (["MODEL.EXTRA_ROI_BRANCHES", "('toy',)"], "MODEL.EXTRA_ROI_BRANCHES: must be off"),
        (["TEST.BBOX_AUG.ENABLED", "True"], "TEST.BBOX_AUG.ENABLED: box test-time augmentation is not supported"),
        (["TEST.BBOX_VOTE.ENABLED", "True"], "TEST.BBOX_VOTE.ENABLED: box voting is not supported"),
        (["RETINANET.NUM_CONVS", "-1"], "RETINANET.NUM_CONVS: must be >= 0"),
    ],
)
def test_unsupported_settings_fail_the_config_check_and_the_builder(extra, match):
    small = ["RESNETS.WIDTH_PER_GROUP", "4", "FPN.DIM", "16"]
    with pytest.raises(ConfigValueError, match=match):
        load("baselines/retinanet_R-50-FPN_1x.yaml", small + extra)
    with pytest.raises(ConfigValueError, match=match):
        build_model(unchecked("baselines/retinanet_R-50-FPN_1x.yaml", small + extra))


def test_missing_pyramid_levels_are_named():
    cfg = load("baselines/retinanet_R-50-FPN_1x.yaml", ["RESNETS.WIDTH_PER_GROUP", "4", "FPN.DIM", "16",
                                                       "FPN.MULTILEVEL_RPN", "False"])  # fmt: skip
    with pytest.raises(ValueError, match=r"lacks level\(s\) \[6, 7\]"):
        build_model(cfg)


def test_bad_convention_values_fail_the_config_check():
    for key in ("RETINANET.ANCHOR_CONVENTION", "RETINANET.LOW_QUALITY_MATCHES", "RETINANET.LOSS_NORMALIZATION"):
        with pytest.raises(ValueError, match=key):
            load("baselines/retinanet_R-50-FPN_1x.yaml", [key, "nonsense"])
