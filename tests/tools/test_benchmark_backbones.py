"""tools/benchmark_backbones.py: FLOPs convention (hand-computed), rows, the markdown table."""

import importlib.util
import sys
from pathlib import Path

import pytest
from torch import nn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("benchmark_backbones_tool", REPO / "tools" / "benchmark_backbones.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    module._default_rows()
    return module


def test_flops_are_twice_the_conv_and_linear_multiply_adds(tool):
    def build():
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 112 x 112 outputs, 8 x 3 x 3 x 3 MACs each
            nn.BatchNorm2d(8),  # not counted
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),  # 80 MACs
        )

    params, gflops = tool.count_gflops(build)
    assert params == pytest.approx((8 * 27 + 8 + 16 + 80 + 10) / 1e6)
    assert gflops == pytest.approx(2 * (112 * 112 * 8 * 27 + 80) / 1e9)


def test_rows_cover_every_backbone_and_flops_match_the_seed_table(tool):
    from pydetectron import backbones

    assert set(backbones.list_backbones()) <= set(tool.ROWS)
    for name in ("resnet50", "darknet19", "regnetx_400mf"):
        params, gflops = tool.count_gflops(tool.ROWS[name].build)
        # The seed table counts a few more operations than convolutions and products.
        assert gflops == pytest.approx(tool.ROWS[name].seed_gflops, rel=0.05)
    assert tool.ROWS["vovnet39_ese"].peer is not None and tool.ROWS["darknet_yolov5s"].peer is None


def test_markdown_table(tool):
    results = [
        {"name": "a", "params_m": 1.0, "gflops": 2.0, "seed_gflops": None, "ours_ips": 10.0},
        {
            "name": "b", "params_m": 3.0, "gflops": 4.0, "seed_gflops": 4.1, "ours_ips": 5.0, "peer": "p",
            "peer_params_m": 3.5, "peer_gflops": 4.5, "peer_ips": 4.0, "ratio": 1.25,
        },
    ]  # fmt: skip
    lines = tool.markdown(results, speed=True).splitlines()
    assert lines[2] == "| a | 1.00 | 2.00 | - | 10.0 | - | - | - | - |"
    assert lines[3] == "| b | 3.00 | 4.00 | 4.10 | 5.0 | p | 3.50 / 4.50 | 4.0 | 1.25 |"
