"""The Registry and the conv bodies registered under Detectron's names."""

import pytest

from pydetectron.modeling import BODIES, Registry
from pydetectron.modeling.registry import strip_detectron_add_prefix

EXPECTED_BODIES = {
    "ResNet.ResNet50_conv4_body",
    "ResNet.ResNet50_conv5_body",
    "ResNet.ResNet101_conv4_body",
    "ResNet.ResNet101_conv5_body",
    "ResNet.ResNet152_conv5_body",
    "FPN.fpn_ResNet50_conv5_body",
    "FPN.fpn_ResNet101_conv5_body",
    "FPN.fpn_ResNet152_conv5_body",
    "FPN.fpn_ResNet50_conv5_P2only_body",
    "FPN.fpn_ResNet101_conv5_P2only_body",
    "FPN.fpn_ResNet152_conv5_P2only_body",
}


def test_every_detectron_body_is_registered():
    assert EXPECTED_BODIES <= set(BODIES)


def test_detectron_add_prefix_finds_the_same_entry():
    assert strip_detectron_add_prefix("FPN.add_fpn_ResNet50_conv5_body") == ("FPN.fpn_ResNet50_conv5_body")
    assert BODIES.get("ResNet.add_ResNet50_conv4_body") is BODIES.get("ResNet.ResNet50_conv4_body")
    assert "FPN.add_fpn_ResNet101_conv5_body" in BODIES


def test_registry_register_and_errors():
    registry = Registry("TEST.KEY")

    @registry.register("heads.alpha_head")
    def alpha():
        return "alpha"

    assert registry.get("heads.alpha_head") is alpha
    assert len(registry) == 1
    with pytest.raises(KeyError, match="registered twice"):
        registry.register("heads.alpha_head")(alpha)
    with pytest.raises(KeyError, match=r"TEST.KEY.*did you mean \['heads.alpha_head'\]"):
        registry.get("heads.alpha_haed")


def test_unknown_body_error_lists_close_names():
    with pytest.raises(KeyError, match="ResNet.ResNet50_conv5_body"):
        BODIES.get("ResNet.ResNet50_conv6_body")
