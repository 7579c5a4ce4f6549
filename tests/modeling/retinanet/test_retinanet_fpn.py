"""RetinaNet's FPN levels P3..P7: P6 from C5 (Detectron) or from P5 (torchvision v1), both equal to
torchvision's FeaturePyramidNetwork + LastLevelP6P7 with the same weights."""

import pytest
import torch
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_list
from pydetectron.modeling import BODIES
from pydetectron.modeling.necks.fpn import FPN

IN_CHANNELS = [8, 16, 32]


@pytest.mark.parametrize("source", ["backbone", "pyramid"])
def test_extra_levels_match_torchvision(source):
    torch.manual_seed(0)
    p6_in = IN_CHANNELS[-1] if source == "backbone" else 16
    theirs = FeaturePyramidNetwork(IN_CHANNELS, 16, extra_blocks=LastLevelP6P7(p6_in, 16)).eval()
    assert theirs.extra_blocks.use_P5 == (source == "pyramid")
    ours = FPN(IN_CHANNELS, dim=16, first_level=3, max_level=7, extra_conv_levels=True, extra_conv_input=source)
    state = theirs.state_dict()
    mapping = ours.torchvision_weight_mapping()
    assert set(mapping) == set(ours.state_dict()) and set(mapping.values()) == set(state)
    ours.load_state_dict({name: state[other] for name, other in mapping.items()})
    inputs = [torch.randn(2, c, 32 // 2**i, 24 // 2**i) for i, c in enumerate(IN_CHANNELS)]
    with torch.no_grad():
        expected = list(theirs({str(i): x for i, x in enumerate(inputs)}).values())
        got = ours.eval()(inputs)
    assert len(got) == len(expected) == 5
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_body_from_cfg_names_and_input_of_fpn_6():
    def body(source):
        cfg = get_cfg()
        merge_cfg_from_list(
            ["MODEL.CONV_BODY", "FPN.fpn_ResNet50_conv5_body", "FPN.FPN_ON", "True", "FPN.MULTILEVEL_RPN", "True",
             "FPN.RPN_MIN_LEVEL", "3", "FPN.RPN_MAX_LEVEL", "7", "FPN.EXTRA_CONV_LEVELS", "True", "FPN.DIM", "32",
             "FPN.EXTRA_CONV_LEVELS_INPUT", source],
            target=cfg,
        )  # fmt: skip
        assert_and_infer_cfg(target=cfg)
        return BODIES.build(cfg.MODEL.CONV_BODY, cfg)

    detectron, torchvision = body("backbone"), body("pyramid")
    assert list(detectron.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    mapping = detectron.detectron_weight_mapping()[0]
    assert mapping["neck.extra_convs.0.conv.weight"] == "fpn_6_w"
    assert mapping["neck.extra_convs.1.conv.weight"] == "fpn_7_w"
    assert "neck.inner_convs.0.conv.weight" in mapping and mapping["neck.inner_convs.0.conv.weight"].startswith(
        "fpn_inner_res3"
    )
    assert detectron.neck.extra_convs[0].conv.in_channels == 2048
    assert torchvision.neck.extra_convs[0].conv.in_channels == 32
    with pytest.raises(ValueError, match="extra_conv_input"):
        FPN(IN_CHANNELS, extra_conv_levels=True, max_level=7, first_level=3, extra_conv_input="C5")
