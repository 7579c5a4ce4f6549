"""FPN neck and FPN bodies: torchvision parity, levels, shapes, Detectron names."""

import pytest
import torch
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops import misc as tv_misc
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from pydetectron.config import get_cfg
from pydetectron.modeling import BODIES
from pydetectron.modeling.backbones import DetectronFPNBody, ResNetBody
from pydetectron.modeling.levels import ShapeSpec, fpn_min_max_levels
from pydetectron.modeling.necks import FPN

IN_CHANNELS = [256, 512, 1024, 2048]


def _pyramid_inputs(sizes, dtype=torch.float64):
    return [torch.randn(1, c, h, w, dtype=dtype) for c, (h, w) in zip(IN_CHANNELS, sizes)]


@pytest.mark.parametrize(
    "sizes",
    [
        [(16, 24), (8, 12), (4, 6), (2, 3)],  # padded to stride 32, as Detectron feeds it
        [(13, 19), (7, 10), (4, 5), (2, 3)],  # odd sizes: nearest upsampling to the size
    ],
)
def test_fpn_matches_torchvision_feature_pyramid_network(sizes):
    torch.manual_seed(0)
    reference = FeaturePyramidNetwork(IN_CHANNELS, 64, extra_blocks=LastLevelMaxPool())
    reference = reference.double().eval()
    ours = FPN(IN_CHANNELS, dim=64, first_level=2, max_level=6).double()
    theirs = reference.state_dict()
    mapping = ours.torchvision_weight_mapping()
    assert set(mapping) == set(ours.state_dict())
    assert set(mapping.values()) == set(theirs)
    ours.load_state_dict({name: theirs[key] for name, key in mapping.items()})

    features = _pyramid_inputs(sizes)
    expected = list(reference({str(i): f for i, f in enumerate(features)}).values())
    got = ours(features)
    assert ours.levels == [2, 3, 4, 5, 6] and len(got) == len(expected) == 5
    for ours_map, their_map in zip(got, expected):
        torch.testing.assert_close(ours_map, their_map, rtol=1e-10, atol=1e-10)


def test_fpn_body_matches_torchvision_resnet_fpn_backbone():
    torch.manual_seed(0)
    reference = resnet_fpn_backbone(
        backbone_name="resnet50",
        weights=None,
        norm_layer=tv_misc.FrozenBatchNorm2d,
        trainable_layers=5,
    )
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, tv_misc.FrozenBatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    reference = reference.double().eval()
    ours = DetectronFPNBody(
        ResNetBody((3, 4, 6, 3), stride_1x1=False, norm="FrozenBN", freeze_at=0),
        dim=256,
        min_level=2,
        max_level=6,
    ).double()
    theirs = reference.state_dict()
    mapping = ours.torchvision_weight_mapping()
    assert set(mapping) == set(ours.state_dict())
    assert set(mapping.values()) == set(theirs)
    ours.load_state_dict({name: theirs[key] for name, key in mapping.items()})

    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    expected = list(reference(x).values())  # finest first: P2..P5, pool
    got = ours(x)
    assert list(got) == ["p2", "p3", "p4", "p5", "p6"]
    assert [tuple(m.shape[-2:]) for m in got.values()] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    for ours_map, their_map in zip(got.values(), expected):
        torch.testing.assert_close(ours_map, their_map, rtol=1e-5, atol=1e-5)


def _fpn_cfg(**fpn_keys):
    cfg = get_cfg()
    cfg.FPN.FPN_ON = True
    cfg.FPN.MULTILEVEL_RPN = True
    cfg.FPN.MULTILEVEL_ROIS = True
    for key, value in fpn_keys.items():
        cfg.FPN[key] = value
    return cfg


@pytest.mark.parametrize("depth", [50, 101])
def test_registered_fpn_bodies(depth):
    cfg = _fpn_cfg()
    body = BODIES.build(f"FPN.fpn_ResNet{depth}_conv5_body", cfg).eval()
    assert body.output_shape() == {f"p{k}": ShapeSpec(256, 2**k) for k in range(2, 7)}
    with torch.no_grad():
        maps = body(torch.randn(1, 3, 64, 96))
    assert {name: tuple(m.shape) for name, m in maps.items()} == {
        "p2": (1, 256, 16, 24),
        "p3": (1, 256, 8, 12),
        "p4": (1, 256, 4, 6),
        "p5": (1, 256, 2, 3),
        "p6": (1, 256, 1, 2),
    }
    mapping, _ = body.detectron_weight_mapping()
    res4_blob = "res4_5_sum" if depth == 50 else "res4_22_sum"
    assert mapping["neck.inner_convs.2.conv.weight"] == f"fpn_inner_{res4_blob}_lateral_w"
    assert mapping["neck.output_convs.2.conv.bias"] == f"fpn_{res4_blob}_b"


def test_p2only_body_returns_the_finest_level_only():
    cfg = _fpn_cfg()
    full = BODIES.build("FPN.fpn_ResNet50_conv5_body", cfg).eval()
    p2only = BODIES.build("FPN.add_fpn_ResNet50_conv5_P2only_body", cfg).eval()
    p2only.load_state_dict(full.state_dict())
    assert p2only.output_shape() == {"p2": ShapeSpec(256, 4)}
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        p2 = p2only(x)
        expected = full(x)["p2"]
    assert list(p2) == ["p2"] and p2["p2"].shape == (1, 256, 16, 24)
    torch.testing.assert_close(p2["p2"], expected)


def test_p6_is_stride_two_subsampling_of_p5():
    torch.manual_seed(0)
    fpn = FPN(IN_CHANNELS, dim=8, max_level=6)
    maps = fpn(_pyramid_inputs([(16, 24), (8, 12), (4, 6), (2, 4)], dtype=torch.float32))
    p5, p6 = maps[-2], maps[-1]
    assert torch.equal(p6, p5[:, :, ::2, ::2])
    assert FPN(IN_CHANNELS, dim=8, max_level=5).levels == [2, 3, 4, 5]


def test_extra_conv_levels_retinanet_style():
    torch.manual_seed(0)
    cfg = _fpn_cfg(EXTRA_CONV_LEVELS=True, RPN_MIN_LEVEL=3, RPN_MAX_LEVEL=7)
    cfg.FPN.MULTILEVEL_ROIS = False
    assert fpn_min_max_levels(cfg) == (3, 7)
    body = BODIES.build("FPN.fpn_ResNet50_conv5_body", cfg).eval()
    assert body.output_shape() == {f"p{k}": ShapeSpec(256, 2**k) for k in range(3, 8)}
    fpn = body.neck
    assert len(fpn.inner_convs) == 3 and len(fpn.extra_convs) == 2
    assert fpn.extra_convs[0].conv.in_channels == 2048  # P6 is computed from C5
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = body(x)
        c5 = body.backbone(x)["res5"]
        p6 = fpn.extra_convs[0](c5)
        p7 = fpn.extra_convs[1](torch.relu(p6))
    assert [tuple(m.shape[-2:]) for m in maps.values()] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    torch.testing.assert_close(maps["p6"], p6)
    torch.testing.assert_close(maps["p7"], p7)
    mapping, _ = body.detectron_weight_mapping()
    assert mapping["neck.extra_convs.0.conv.weight"] == "fpn_6_w"
    assert mapping["neck.extra_convs.1.conv.bias"] == "fpn_7_b"
    assert mapping["neck.inner_convs.0.conv.weight"] == "fpn_inner_res3_3_sum_lateral_w"


def test_min_max_levels_follow_multilevel_switches():
    cfg = _fpn_cfg()
    assert fpn_min_max_levels(cfg) == (2, 6)
    cfg.FPN.MULTILEVEL_RPN = False
    assert fpn_min_max_levels(cfg) == (2, 5)
    cfg.FPN.MULTILEVEL_ROIS = False
    assert fpn_min_max_levels(cfg) == (2, 5)


def test_fpn_argument_errors():
    with pytest.raises(ValueError, match="needs extra_conv_levels"):
        FPN(IN_CHANNELS, max_level=7)
    with pytest.raises(ValueError, match="below the top backbone level"):
        FPN(IN_CHANNELS, max_level=4)
    with pytest.raises(ValueError, match=r"FPN input C3 must be \[N, 512, H, W\]"):
        FPN(IN_CHANNELS)(_pyramid_inputs([(8, 8)] * 4)[:1] + [torch.zeros(1, 5, 4, 4)] * 3)
    with pytest.raises(ValueError, match="RES5_DILATION"):
        DetectronFPNBody(ResNetBody((3, 4, 6, 3), res5_dilation=2))


def test_zero_init_lateral_and_xavier_init():
    fpn = FPN(IN_CHANNELS, dim=32, zero_init_lateral=True)
    for lateral in fpn.inner_convs[:-1]:
        assert torch.count_nonzero(lateral.conv.weight) == 0
    top = fpn.inner_convs[-1].conv.weight
    bound = (3.0 / 2048) ** 0.5  # Caffe2 XavierFill: fan_in = 2048 * 1 * 1
    assert 0 < top.abs().max() <= bound
    assert all(torch.count_nonzero(c.conv.bias) == 0 for c in fpn.output_convs)


def test_gn_fpn_body_builds_runs_and_names():
    cfg = _fpn_cfg(USE_GN=True)
    cfg.RESNETS.TRANS_FUNC = "bottleneck_gn_transformation"
    cfg.RESNETS.STEM_FUNC = "basic_gn_stem"
    cfg.RESNETS.SHORTCUT_FUNC = "basic_gn_shortcut"
    cfg.TRAIN.FREEZE_AT = 0
    body = BODIES.build("FPN.fpn_ResNet50_conv5_body", cfg)
    fpn = body.neck
    assert fpn.inner_convs[0].conv.bias is None and isinstance(fpn.inner_convs[0].norm, nn.GroupNorm)
    maps = body(torch.randn(1, 3, 64, 32))
    assert [tuple(m.shape[-2:]) for m in maps.values()] == [(16, 8), (8, 4), (4, 2), (2, 1), (1, 1)]
    sum(m.sum() for m in maps.values()).backward()
    assert body.backbone.stem.conv1.weight.grad is not None

    mapping, orphans = body.detectron_weight_mapping()
    params = {name for name, _ in body.named_parameters()}
    assert params == set(mapping)
    assert len(set(mapping.values())) == len(mapping)
    assert mapping["neck.inner_convs.3.conv.weight"] == "fpn_inner_res5_2_sum_w"
    assert mapping["neck.inner_convs.3.norm.weight"] == "fpn_inner_res5_2_sum_gn_s"
    assert mapping["neck.inner_convs.1.norm.bias"] == "fpn_inner_res3_3_sum_lateral_gn_b"
    assert mapping["neck.output_convs.0.norm.weight"] == "fpn_res2_2_sum_gn_s"
    assert mapping["backbone.res2.0.norm1.weight"] == "res2_0_branch2a_gn_s"
    assert "pred_w" in orphans


def test_detectron_mapping_of_default_fpn_body_covers_everything_once():
    body = BODIES.build("FPN.fpn_ResNet50_conv5_body", _fpn_cfg())
    mapping, _ = body.detectron_weight_mapping()
    assert set(mapping) == set(body.state_dict())
    assert len(set(mapping.values())) == len(mapping)
    assert mapping["backbone.stem.norm1.weight"] == "res_conv1_bn_s"
    assert mapping["neck.inner_convs.3.conv.bias"] == "fpn_inner_res5_2_sum_b"
    assert mapping["neck.output_convs.3.conv.weight"] == "fpn_res5_2_sum_w"
