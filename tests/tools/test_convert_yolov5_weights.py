"""tools/convert_yolov5_weights.py: converted weights run the same function in an
Ultralytics-layout YOLOv5 backbone written here (Conv, Bottleneck, C3 as Ultralytics
builds them, ReLU for SiLU), and convert back unchanged."""

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from pydetectron import backbones

REPO = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("convert_yolov5_tool", REPO / "tools" / "convert_yolov5_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, p=None):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, e=1.0):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1)
        self.cv2 = Conv(hidden, c2, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class C3(nn.Module):
    def __init__(self, c1, c2, n=1, e=0.5):
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1)
        self.cv2 = Conv(c1, hidden, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


def ultralytics_backbone(widths, depths):
    """YOLOv5's yaml backbone, model.0 .. model.8 (Conv 6x6/2, then Conv 3x3/2 + C3 pairs)."""
    layers = [Conv(3, widths[0], 6, 2, 2)]
    for c_in, c_out, n in zip(widths[:-1], widths[1:], depths):
        layers += [Conv(c_in, c_out, 3, 2), C3(c_out, c_out, n)]
    return nn.Sequential(*layers)


class Wrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model


def randomized(module, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=generator) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=generator) * 0.1
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return module.double().eval()


@torch.no_grad()
def test_converted_weights_compute_the_same_maps_and_convert_back(tmp_path):
    ours = randomized(backbones.darknet_yolov5n())
    src, dst, back = tmp_path / "ours.pth", tmp_path / "ultralytics.pth", tmp_path / "back.pth"
    torch.save(ours.state_dict(), src)
    tool = load_tool()
    assert tool.main([str(src), str(dst)]) == 0

    converted = torch.load(dst, weights_only=True)
    assert all(k.startswith("model.") and int(k.split(".")[1]) <= 8 for k in converted)
    assert "model.2.m.0.cv1.conv.weight" in converted and "model.8.cv3.bn.running_var" in converted
    reference = Wrapper(ultralytics_backbone([16, 32, 64, 128, 256], [1, 2, 3, 1])).double().eval()
    reference.load_state_dict(converted, strict=True)

    x = torch.randn(2, 3, 97, 129, dtype=torch.float64)
    expected, y = [], x
    for i, layer in enumerate(reference.model):
        y = layer(y)
        if i % 2 == 0:  # model.0 (stride 2), model.2, 4, 6, 8 (C3 outputs)
            expected.append(y)
    for ours_map, theirs in zip(ours.get_feature_maps(x), expected):
        torch.testing.assert_close(ours_map, theirs)

    assert tool.main(["--from-ultralytics", str(dst), str(back)]) == 0
    restored = torch.load(back, weights_only=True)
    assert restored.keys() == ours.state_dict().keys()
    for key, value in ours.state_dict().items():
        assert torch.equal(restored[key], value), key


def test_ultralytics_head_entries_need_skip_rest(tmp_path):
    tool = load_tool()
    state = tool.to_ultralytics(backbones.darknet_yolov5n().state_dict())
    state["model.9.cv1.conv.weight"] = torch.zeros(1)  # SPPF
    path, out = tmp_path / "full.pth", tmp_path / "ours.pth"
    torch.save(state, path)
    with pytest.raises(SystemExit, match=r"model\.0\.\.model\.8.*model\.9\.cv1"):
        tool.main(["--from-ultralytics", str(path), str(out)])
    assert tool.main(["--from-ultralytics", "--skip-rest", str(path), str(out)]) == 0
    loaded = backbones.darknet_yolov5n(pretrained=str(out))  # strict load of the converted file
    assert loaded.out_channels_list == (16, 32, 64, 128, 256)


def test_unknown_names_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"stages.0.attention.weight": torch.zeros(1)}, path)
    with pytest.raises(SystemExit, match="not a Darknet-YOLOv5 weight name: 'stages.0.attention.weight'"):
        load_tool().main([str(path), str(tmp_path / "out.pth")])
