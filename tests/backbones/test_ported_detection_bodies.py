"""The detection forms train: every parameter receives a gradient (no unused ones, as DDP needs),
stochastic depth acts only in training, and odd input sizes give maps at the expected strides."""

import pytest
import torch

from pydetectron.backbones.ported import ConvNeXt, SimpleFeaturePyramid, SwinTransformer, VisionTransformer


def _vitdet():
    backbone = VisionTransformer(
        img_size=64,
        embed_dim=64,
        depth=4,
        num_heads=2,
        window_size=2,
        global_blocks=(1, 3),
        rel_pos=True,
        drop_path_rate=0.2,
    )
    return torch.nn.ModuleDict({"backbone": backbone, "pyramid": SimpleFeaturePyramid(64, 32)})


BODIES = {
    "vitdet+simple_fpn": (_vitdet, (4, 8, 16, 32)),
    "swin": (
        lambda: SwinTransformer(
            embed_dim=16,
            depths=(1, 1, 2, 1),
            num_heads=(1, 2, 2, 4),
            window_size=4,
            always_partition=True,
            out_norms=True,
            drop_path_rate=0.2,
        ),
        (4, 8, 16, 32),
    ),
    "convnext": (
        lambda: ConvNeXt(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64), out_norms=True, drop_path_rate=0.2),
        (4, 8, 16, 32),
    ),
}


def _maps(body, x):
    if isinstance(body, torch.nn.ModuleDict):
        return body["pyramid"](body["backbone"](x))
    return body.get_feature_maps(x)


@pytest.mark.parametrize("name", list(BODIES))
def test_detection_body_trains_and_uses_every_parameter(name):
    torch.manual_seed(0)
    build, strides = BODIES[name]
    body = build().train()
    x = torch.randn(2, 3, 96, 160)
    maps = _maps(body, x)
    assert [tuple(m.shape[-2:]) for m in maps] == [(96 // s, 160 // s) for s in strides]
    sum((m**2).mean() for m in maps).backward()
    unused = [n for n, p in body.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused[:5]}"
    # stochastic depth: training passes differ, evaluation passes repeat exactly
    with torch.no_grad():
        assert not torch.equal(_maps(body, x)[-1], _maps(body, x)[-1])
        body.eval()
        assert torch.equal(_maps(body, x)[-1], _maps(body, x)[-1])
