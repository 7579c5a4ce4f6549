"""Every toolbox backbone's maps at 224x224 and at an odd size (225x301): five maps at
strides 2..32 with `out_channels_list` widths. Shapes only, on the meta device (no compute);
values are checked against torchvision and float64 references in the other tests."""

import pytest
import torch
from toolbox_tables import SEED_PARAMS_M

from pydetectron import backbones


def expected_sizes(size: int, yolov5: bool) -> list[int]:
    # 3x3 stride-2 convs and 3x3 stride-2 max pools (padding 1), and torchvision's stems,
    # give ceil(n / 2); YOLOv5's 6x6 stride-2 stem with padding 2 gives floor(n / 2).
    first = size // 2 if yolov5 else -(-size // 2)
    sizes = [first]
    while len(sizes) < 5:
        sizes.append(-(-sizes[-1] // 2))
    return sizes


@pytest.mark.parametrize("name", list(SEED_PARAMS_M))
def test_maps_have_the_contract_strides_and_channels(name):
    if name.startswith("regnet"):  # RegNet's constructor computes widths with torch ops
        model = backbones.build_backbone(name).to("meta")
    else:
        with torch.device("meta"):
            model = backbones.build_backbone(name)
    model.eval()
    assert model.stride == 32 and len(model.out_channels_list) == 5
    assert model.feature_strides == (2, 4, 8, 16, 32)
    yolov5 = name.startswith("darknet_yolov5")
    for height, width in ((224, 224), (225, 301)):
        maps = model.get_feature_maps(torch.empty(2, 3, height, width, device="meta"))
        assert [m.shape[0] for m in maps] == [2] * 5
        assert [m.shape[1] for m in maps] == list(model.out_channels_list)
        assert [m.shape[2] for m in maps] == expected_sizes(height, yolov5)
        assert [m.shape[3] for m in maps] == expected_sizes(width, yolov5)
        assert model(torch.empty(1, 3, height, width, device="meta")).shape[1] == model.out_channels_list[-1]
