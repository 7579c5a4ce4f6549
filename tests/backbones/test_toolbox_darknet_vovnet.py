"""Darknet and VoVNet families: map strides and channels, blocks against float64 references,
vision-toolbox weight names and strict `pretrained=` loading."""

import functools

import pytest
import torch
import torch.nn.functional as F

from pydetectron import backbones
from pydetectron.backbones.toolbox import (
    CSPDarknetStage,
    DarknetBlock,
    OSABlock,
    VoVNet,
    freeze_batch_norm,
    vovnet_stages,
)
from pydetectron.nn import FrozenBatchNorm2d


def meta_device(test):
    """Run `test` with modules built on the meta device: structure only, no memory or init."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        with torch.device("meta"):
            return test(*args, **kwargs)

    return run


@pytest.mark.parametrize("name", ["darknet19", "darknet_yolov5n", "vovnet19_slim_ese"])
@torch.no_grad()
def test_forward_is_the_last_map(name):
    model = backbones.build_backbone(name).eval()
    x = torch.randn(1, 3, 225, 301)
    maps = model.get_feature_maps(x)
    assert [m.shape[1] for m in maps] == list(model.out_channels_list)
    assert torch.equal(model(x), maps[-1])


@meta_device  # structure only
def test_channels_and_depths_follow_the_toolbox_configs():
    assert backbones.darknet19().out_channels_list == (64, 128, 256, 512, 1024)
    assert backbones.darknet_yolov5n().out_channels_list == (16, 32, 64, 128, 256)
    assert backbones.darknet_yolov5x().out_channels_list == (80, 160, 320, 640, 1280)
    assert [len(s.blocks) for s in backbones.darknet_yolov5m().stages] == [2, 4, 6, 2]
    assert [len(s.blocks) for s in backbones.darknet_yolov5x().stages] == [4, 8, 12, 4]
    assert [len(s.blocks) for s in backbones.cspdarknet53().stages] == [1, 2, 8, 8, 4]
    assert backbones.vovnet19_slim_ese().out_channels_list == (128, 128, 256, 384, 512)
    assert backbones.vovnet99_ese().out_channels_list == (128, 256, 512, 768, 1024)
    assert [len(s) - 1 for s in backbones.vovnet57().stages] == [1, 1, 4, 3]  # minus the max pool
    activations = {type(m) for m in backbones.darknet53().modules() if not list(m.children())}
    assert torch.nn.ReLU in activations and not activations & {torch.nn.LeakyReLU, torch.nn.SiLU}
    assert not any(isinstance(m, torch.nn.LeakyReLU | torch.nn.SiLU) for m in backbones.darknet_yolov5s().modules())
    bn = next(m for m in backbones.darknet_yolov5s().modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert (bn.eps, bn.momentum) == (1e-5, 0.1)  # PyTorch defaults, not YOLOv5's 1e-3 / 0.03


@meta_device
def test_state_dict_names_follow_vision_toolbox():
    names = set(backbones.darknet19().state_dict())
    assert {"stem.conv.weight", "stages.0.conv.weight", "stages.1.conv.conv.weight"} <= names
    assert "stages.4.blocks.1.conv2.norm.running_var" in names
    names = set(backbones.cspdarknet53().state_dict())
    assert {"stages.0.conv1.conv.weight", "stages.0.conv2.norm.bias", "stages.4.out_conv.conv.weight"} <= names
    assert "stages.3.blocks.7.conv1.conv.weight" in names
    names = set(backbones.vovnet39_ese().state_dict())
    assert {"stem.0.conv.weight", "stem.2.norm.weight", "stages.0.module_0.convs.4.conv.weight"} <= names
    assert {"stages.0.module_0.ese.linear.weight", "stages.3.module_1.out_conv.norm.running_mean"} <= names
    assert not any(".ese." in k for k in backbones.vovnet39().state_dict())


# ---- float64 functional references ------------------------------------------------------


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=generator, dtype=m.weight.dtype) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=generator, dtype=m.weight.dtype) * 0.1
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return module.double().eval()


def ref_conv_norm_act(x, unit, stride=1, act=True):
    conv, bn = unit.conv, unit.norm
    k = conv.weight.shape[-1]
    padding = max(-(-(k - stride) // 2), 0)
    y = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=padding)
    y = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    y = y * bn.weight[:, None, None] + bn.bias[:, None, None]
    return y.clamp_min(0) if act else y


def ref_darknet_block(x, block):
    return x + ref_conv_norm_act(ref_conv_norm_act(x, block.conv1), block.conv2)


def ref_csp_stage(x, stage):
    y = ref_conv_norm_act(x, stage.conv, stride=2)
    shortcut = ref_conv_norm_act(y, stage.conv1)
    z = ref_conv_norm_act(y, stage.conv2)
    for block in stage.blocks:
        z = ref_darknet_block(z, block)
    return ref_conv_norm_act(torch.cat([shortcut, z], dim=1), stage.out_conv)


def ref_osa_block(x, block, ese: bool, residual: bool):
    outputs = [x]
    for conv in block.convs:
        outputs.append(ref_conv_norm_act(outputs[-1], conv))
    out = ref_conv_norm_act(torch.cat(outputs, dim=1), block.out_conv)
    if ese:
        pooled = out.mean(dim=(2, 3), keepdim=True)
        gate = F.conv2d(pooled, block.ese.linear.weight, block.ese.linear.bias)
        out = out * torch.clamp(gate / 6 + 0.5, 0, 1)  # hard sigmoid
    return out + x if residual else out


def test_darknet_block_and_csp_stage_match_references():
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    block = randomize(DarknetBlock(8))
    torch.testing.assert_close(block(x), ref_darknet_block(x, block))
    stage = randomize(CSPDarknetStage(2, 8, 16))
    out = stage(x)
    assert out.shape == (2, 16, 5, 6)
    torch.testing.assert_close(out, ref_csp_stage(x, stage))


@pytest.mark.parametrize("ese,residual", [(True, True), (False, True), (True, False), (False, False)])
def test_osa_block_matches_reference(ese, residual):
    x = torch.randn(2, 16, 7, 9, dtype=torch.float64)
    block = randomize(OSABlock(16, 8, 3, 16, ese=ese, residual=residual))
    torch.testing.assert_close(block(x), ref_osa_block(x, block, ese, residual))
    # No shortcut when the widths differ, whatever the switch says.
    wider = randomize(OSABlock(16, 8, 3, 24, ese=ese, residual=residual))
    torch.testing.assert_close(wider(x), ref_osa_block(x, wider, ese, residual=False))


@meta_device
def test_vovnet_switches_give_pure_v1_blocks():
    model = VoVNet(vovnet_stages(39, slim=False), ese=False, residual=False)
    blocks = [m for m in model.modules() if isinstance(m, OSABlock)]
    assert len(blocks) == 6 and all(b.ese is None and not b.residual for b in blocks)
    v2 = backbones.vovnet39_ese()
    blocks = [m for m in v2.modules() if isinstance(m, OSABlock)]
    assert all(b.ese is not None for b in blocks)
    assert [b.residual for b in blocks] == [False, False, False, True, False, True]


@meta_device
def test_darknet19_stages_are_strided_convs_without_pooling():
    model = backbones.darknet19()
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    strided = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 5


# ---- pretrained files -------------------------------------------------------------------


def test_pretrained_round_trip_and_strict_errors(tmp_path):
    source = randomize(backbones.darknet_yolov5n()).float()
    path = tmp_path / "yolov5n.pth"
    torch.save(source.state_dict(), path)
    loaded = backbones.darknet_yolov5n(pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    with pytest.raises(ValueError, match="shape mismatches: stem.conv.weight"):
        backbones.darknet_yolov5s(pretrained=str(path))
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"1 unexpected \(e.g. \['extra.weight'\]\)"):
        backbones.darknet_yolov5n(pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        backbones.darknet_yolov5n(pretrained=str(tmp_path / "absent.pth"))


def test_pretrained_accepts_a_classifier_checkpoint(tmp_path):
    source = randomize(backbones.vovnet19_slim_ese()).float()
    model_state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    model_state["head.weight"] = torch.zeros(4, 512)
    model_state["head.bias"] = torch.zeros(4)
    path = tmp_path / "classifier.pth"
    torch.save({"model": model_state, "backbone": "vovnet19_slim_ese", "num_classes": 4}, path)
    loaded = backbones.vovnet19_slim_ese(pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"Darknet: expected an image batch \[N, 3, H, W\], got \(3, 32, 32\)"):
        backbones.darknet19()(torch.zeros(3, 32, 32))


@torch.no_grad()
def test_freeze_batch_norm_keeps_the_eval_function_and_the_names():
    model = randomize(backbones.vovnet19_slim_ese()).float()
    names = set(model.state_dict()) - {k for k in model.state_dict() if k.endswith("num_batches_tracked")}
    x = torch.randn(2, 3, 64, 64)
    expected = model(x)
    freeze_batch_norm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert set(model.state_dict()) == names
    model.train()  # frozen statistics: training mode computes the same function
    torch.testing.assert_close(model(x), expected)
