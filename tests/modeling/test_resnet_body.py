"""ResNet/ResNeXt conv bodies: torchvision parity, shapes, freezing, Detectron names."""

import pytest
import torch
import torchvision
from torch import nn

from pydetectron.config import get_cfg
from pydetectron.modeling import BODIES, ShapeSpec
from pydetectron.modeling.backbones import (
    ResNetBlockSettings,
    ResNetBody,
    freeze_at_from_cfg,
    res5_head_stage,
    resnet_norm_from_cfg,
)
from pydetectron.nn import AffineChannel2d, FrozenBatchNorm2d

R50 = (3, 4, 6, 3)


def _randomize_batch_norms(model: nn.Module) -> None:
    """Give every BatchNorm non-trivial affine terms and statistics."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)


def _torchvision_stage_outputs(model, x):
    y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outputs = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        y = getattr(model, name)(y)
        outputs.append(y)
    return outputs


@pytest.mark.parametrize(
    ("factory", "num_groups", "width_per_group"),
    [
        (torchvision.models.resnet50, 1, 64),
        (torchvision.models.resnext50_32x4d, 32, 4),
    ],
)
def test_matches_torchvision_stage_outputs(factory, num_groups, width_per_group):
    torch.manual_seed(0)
    reference = factory(weights=None).double().eval()
    _randomize_batch_norms(reference)
    ours = ResNetBody(
        R50,
        num_groups=num_groups,
        width_per_group=width_per_group,
        stride_1x1=False,
        norm="FrozenBN",
        freeze_at=0,
    ).double()
    theirs = reference.state_dict()
    mapping = ours.torchvision_weight_mapping()
    assert set(mapping) == set(ours.state_dict())
    unused = set(theirs) - set(mapping.values())
    assert unused == {"fc.weight", "fc.bias"} | {k for k in theirs if "num_batches" in k}
    ours.load_state_dict({name: theirs[key] for name, key in mapping.items()})

    # float64 grouped convolutions are slow on CPU: keep the input small
    x = torch.randn(1, 3, 64, 64 if num_groups == 1 else 32, dtype=torch.float64)
    expected = _torchvision_stage_outputs(reference, x)
    ours.out_features = ["res2", "res3", "res4", "res5"]
    got = ours(x)
    assert list(got) == ["res2", "res3", "res4", "res5"]
    for ours_map, their_map in zip(got.values(), expected):
        assert ours_map.shape == their_map.shape
        torch.testing.assert_close(ours_map, their_map, rtol=1e-5, atol=1e-5)


def test_stride_on_1x1_or_3x3():
    msra = ResNetBody(R50, stride_1x1=True)
    torch_style = ResNetBody(R50, stride_1x1=False)
    assert msra.res3[0].conv1.stride == (2, 2) and msra.res3[0].conv2.stride == (1, 1)
    assert torch_style.res3[0].conv1.stride == (1, 1)
    assert torch_style.res3[0].conv2.stride == (2, 2)
    # res2 keeps the stem's stride 4; later blocks never stride.
    assert msra.res2[0].conv1.stride == (1, 1) and msra.res4[1].conv1.stride == (1, 1)


def test_resnext_widths_and_groups():
    body = ResNetBody(R50, num_groups=32, width_per_group=8)
    for stage, width in (("res2", 256), ("res3", 512), ("res4", 1024), ("res5", 2048)):
        conv = getattr(body, stage)[0].conv2
        assert (conv.in_channels, conv.out_channels, conv.groups) == (width, width, 32)


CONV_BODY_SHAPES = [
    # name, blocks per stage, output name, channels, stride, output [C, H, W] for a 64x96 input
    ("ResNet.ResNet50_conv4_body", [3, 4, 6], "res4", 1024, 16, (1024, 4, 6)),
    ("ResNet.ResNet50_conv5_body", [3, 4, 6, 3], "res5", 2048, 32, (2048, 2, 3)),
    ("ResNet.ResNet101_conv4_body", [3, 4, 23], "res4", 1024, 16, (1024, 4, 6)),
    ("ResNet.ResNet101_conv5_body", [3, 4, 23, 3], "res5", 2048, 32, (2048, 2, 3)),
    ("ResNet.ResNet152_conv5_body", [3, 8, 36, 3], "res5", 2048, 32, (2048, 2, 3)),
]


@pytest.mark.parametrize(("name", "blocks", "out_name", "channels", "stride", "shape"), CONV_BODY_SHAPES)
def test_registered_conv_body_shapes(name, blocks, out_name, channels, stride, shape):
    body = BODIES.build(name, get_cfg()).eval()
    assert [len(getattr(body, stage)) for stage in body.stage_names] == blocks
    assert body.stage_blob_names == [f"res{stage}_{count - 1}_sum" for stage, count in enumerate(blocks, start=2)]
    assert body.output_shape() == {out_name: ShapeSpec(channels, stride)}
    assert body.stage_dims == [256, 512, 1024, 2048][: len(blocks)]
    with torch.no_grad():
        out = body(torch.randn(1, 3, 64, 96))
    assert list(out) == [out_name] and out[out_name].shape == (1, *shape)


def test_res5_dilation_keeps_stride_16():
    cfg = get_cfg()
    cfg.RESNETS.RES5_DILATION = 2
    body = BODIES.build("ResNet.ResNet50_conv5_body", cfg).eval()
    assert body.output_shape() == {"res5": ShapeSpec(2048, 16)}
    first = body.res5[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (1, 1)
    assert all(block.conv2.dilation == (2, 2) for block in body.res5)
    assert all(block.conv2.padding == (2, 2) for block in body.res5)
    with torch.no_grad():
        assert body(torch.randn(1, 3, 64, 96))["res5"].shape == (1, 2048, 4, 6)


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 4])
def test_freeze_at_stops_gradients(freeze_at):
    body = ResNetBody((1, 1, 2, 1), norm="GN", freeze_at=freeze_at)
    frozen_parts = (["stem"] if freeze_at else []) + [f"res{i}" for i in range(2, freeze_at + 1)]
    out = body(torch.randn(1, 3, 32, 32))["res5"]
    out.sum().backward()
    for name, param in body.named_parameters():
        part = name.split(".")[0]
        if part in frozen_parts:
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.requires_grad and param.grad is not None, name


def test_freeze_at_freezes_batch_norms_and_affine_channels_stay_frozen():
    body = ResNetBody(R50, norm="BN", freeze_at=2)
    assert isinstance(body.stem.norm1, FrozenBatchNorm2d)
    assert isinstance(body.res2[2].norm3, FrozenBatchNorm2d)
    assert isinstance(body.res3[0].norm1, nn.BatchNorm2d) and body.res3[0].norm1.weight.requires_grad

    detectron = ResNetBody(R50, norm="AffineChannel", freeze_at=0)
    assert isinstance(detectron.res5[0].norm1, AffineChannel2d)
    assert detectron.stem.conv1.weight.requires_grad
    norm_params = [p for m in detectron.modules() if isinstance(m, AffineChannel2d) for p in m.parameters()]
    assert norm_params and not any(p.requires_grad for p in norm_params)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="freeze_at"):
        ResNetBody((3, 4, 6), freeze_at=5)
    with pytest.raises(ValueError, match="block_counts"):
        ResNetBody((3, 4))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        ResNetBody((1, 1, 1))(torch.zeros(1, 1, 32, 32))


def _assert_covers_parameters_once(module, mapping):
    params = {name for name, _ in module.named_parameters()}
    assert params <= set(mapping), sorted(params - set(mapping))[:5]
    assert set(mapping) <= set(module.state_dict())
    assert len(set(mapping.values())) == len(mapping), "a Detectron blob is used twice"


def test_detectron_names_affine_channel_body():
    body = ResNetBody(R50)
    mapping, orphans = body.detectron_weight_mapping()
    _assert_covers_parameters_once(body, mapping)
    assert set(mapping) == set(body.state_dict())
    expected = {
        "stem.conv1.weight": "conv1_w",
        "stem.norm1.weight": "res_conv1_bn_s",
        "stem.norm1.bias": "res_conv1_bn_b",
        "res2.0.conv1.weight": "res2_0_branch2a_w",
        "res2.0.norm1.weight": "res2_0_branch2a_bn_s",
        "res2.0.shortcut.conv.weight": "res2_0_branch1_w",
        "res2.0.shortcut.norm.bias": "res2_0_branch1_bn_b",
        "res3.3.conv2.weight": "res3_3_branch2b_w",
        "res4.5.norm3.bias": "res4_5_branch2c_bn_b",
        "res5.2.conv3.weight": "res5_2_branch2c_w",
    }
    for ours, blob in expected.items():
        assert mapping[ours] == blob
    assert "res2.1.shortcut.conv.weight" not in mapping  # identity shortcut
    assert {"conv1_b", "fc1000_w", "fc1000_b", "res2_0_branch2a_b"} <= set(orphans)
    # exactly 4 projection shortcuts (first block of each stage) in a ResNet-50
    assert sum(blob.endswith("_branch1_w") for blob in mapping.values()) == 4


def test_detectron_names_gn_body_and_frozen_bn_buffers():
    gn_body = ResNetBody((3, 4, 6), norm="GN")
    mapping, orphans = gn_body.detectron_weight_mapping()
    _assert_covers_parameters_once(gn_body, mapping)
    assert mapping["stem.norm1.weight"] == "conv1_gn_s"
    assert mapping["res4.5.norm2.bias"] == "res4_5_branch2b_gn_b"
    assert mapping["res3.0.shortcut.norm.weight"] == "res3_0_branch1_gn_s"
    assert "pred_w" in orphans and "conv1_b" not in orphans

    frozen_bn = ResNetBody((3, 4, 6), norm="FrozenBN")
    mapping, _ = frozen_bn.detectron_weight_mapping()
    assert mapping["res2.0.norm1.weight"] == "res2_0_branch2a_bn_s"
    assert "res2.0.norm1.running_mean" not in mapping


def test_gn_body_builds_from_cfg_and_runs():
    cfg = get_cfg()
    cfg.RESNETS.TRANS_FUNC = "bottleneck_gn_transformation"
    cfg.RESNETS.STEM_FUNC = "basic_gn_stem"
    cfg.RESNETS.SHORTCUT_FUNC = "basic_gn_shortcut"
    cfg.GROUP_NORM.DIM_PER_GP = 16
    cfg.GROUP_NORM.NUM_GROUPS = -1
    body = BODIES.build("ResNet.ResNet50_conv4_body", cfg)
    assert isinstance(body.res3[0].norm2, nn.GroupNorm)
    assert body.res3[0].norm2.num_groups == 128 // 16
    assert body.stem.norm1.num_groups == 64 // 16
    out = body(torch.randn(1, 3, 32, 64))["res4"]
    assert out.shape == (1, 1024, 2, 4) and torch.isfinite(out).all()


def test_norm_and_freeze_at_from_cfg():
    cfg = get_cfg()
    assert resnet_norm_from_cfg(cfg) == "AffineChannel"
    cfg.RESNETS.STEM_FUNC = "basic_gn_stem"
    with pytest.raises(ValueError, match="all be GroupNorm ones or all BatchNorm ones"):
        resnet_norm_from_cfg(cfg)
    cfg.RESNETS.STEM_FUNC = "fancy_stem"
    with pytest.raises(ValueError, match="RESNETS.STEM_FUNC='fancy_stem'"):
        resnet_norm_from_cfg(cfg)

    cfg = get_cfg()
    cfg.RESNETS.NORM = "FrozenBN"
    assert resnet_norm_from_cfg(cfg) == "FrozenBN"
    cfg.RESNETS.NORM = "GN"
    with pytest.raises(ValueError, match="RESNETS.NORM='GN' contradicts"):
        resnet_norm_from_cfg(cfg)

    cfg = get_cfg()
    assert freeze_at_from_cfg(cfg) == 2
    cfg.TRAIN.FREEZE_AT = 0  # Detectron's key
    assert freeze_at_from_cfg(cfg) == 0
    cfg.RESNETS.FREEZE_AT = 4  # Detectron.pytorch's key, different non-default value
    with pytest.raises(ValueError, match="disagree"):
        freeze_at_from_cfg(cfg)
    cfg.TRAIN.FREEZE_AT = 2
    assert freeze_at_from_cfg(cfg) == 4


def test_from_cfg_passes_resnext_settings():
    cfg = get_cfg()
    cfg.RESNETS.NUM_GROUPS = 32
    cfg.RESNETS.WIDTH_PER_GROUP = 4
    cfg.RESNETS.STRIDE_1X1 = False
    cfg.TRAIN.FREEZE_AT = 3
    body = BODIES.build("ResNet.ResNet50_conv5_body", cfg)
    assert body.res2[0].conv2.groups == 32 and body.res2[0].conv2.out_channels == 128
    assert body.res3[0].conv2.stride == (2, 2)
    assert not body.res3[0].conv1.weight.requires_grad and body.res4[0].conv1.weight.requires_grad


def test_res5_head_stage_for_c4_box_head():
    cfg = get_cfg()
    cfg.RESNETS.NUM_GROUPS, cfg.RESNETS.WIDTH_PER_GROUP = 2, 32
    head = ResNetBlockSettings.from_cfg(cfg).res5_head(1024, resolution=14).eval()
    assert head[0].conv2.groups == 2 and head[0].conv2.out_channels == 2 * 32 * 8
    assert head.dim_out == 2048 and len(head) == 3
    with torch.no_grad():
        out = head(torch.randn(4, 1024, 14, 14))
    assert out.shape == (4, 2048, 7, 7)
    mapping, _ = head.detectron_weight_mapping()
    assert mapping["0.shortcut.conv.weight"] == "res5_0_branch1_w"
    assert mapping["2.norm3.weight"] == "res5_2_branch2c_bn_s"
    assert res5_head_stage(stride_init=1)[0].conv1.stride == (1, 1)
