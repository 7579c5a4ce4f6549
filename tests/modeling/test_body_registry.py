"""The registries (one builder pattern: classes built by `from_cfg`) and the conv bodies under Detectron's names."""

import ast
import inspect
from pathlib import Path

import pytest

import pydetectron.modeling
from pydetectron.modeling import (
    BODIES,
    BOX_HEADS,
    KEYPOINT_HEADS,
    MASK_HEADS,
    MODEL_TYPES,
    ROI_BRANCHES,
    Registry,
)
from pydetectron.modeling.registry import strip_detectron_add_prefix

MODELING = Path(pydetectron.modeling.__file__).parent
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


class AlphaHead:
    """A stand-in module: `from_cfg` records what the registry passed."""

    def __init__(self, **seen):
        self.seen = seen

    @classmethod
    def from_cfg(cls, cfg, dim_in, wide=False):
        return cls(cfg=cfg, dim_in=dim_in, wide=wide)


def test_registry_builds_through_from_cfg_with_the_names_preset():
    registry = Registry("TEST.KEY")
    registry.register("heads.alpha_head")(AlphaHead)
    registry.register("heads.alpha_wide_head", wide=True)(AlphaHead)
    assert registry.get("heads.alpha_head").cls is AlphaHead and len(registry) == 2
    plain = registry.build("heads.alpha_head", "the cfg", 7)
    assert plain.seen == {"cfg": "the cfg", "dim_in": 7, "wide": False}
    assert registry.build("heads.alpha_wide_head", "the cfg", 8).seen == {"cfg": "the cfg", "dim_in": 8, "wide": True}
    with pytest.raises(KeyError, match="registered twice"):
        registry.register("heads.alpha_head")(AlphaHead)
    with pytest.raises(KeyError, match=r"TEST.KEY.*did you mean \['heads.alpha_head'"):
        registry.get("heads.alpha_haed")


def test_registry_refuses_entries_without_from_cfg():
    registry = Registry("TEST.KEY")

    def build_alpha(cfg):
        return "alpha"

    with pytest.raises(TypeError, match="'heads.alpha_head'.*class with a from_cfg classmethod"):
        registry.register("heads.alpha_head")(build_alpha)
    with pytest.raises(TypeError, match="class with a from_cfg classmethod"):
        registry.register("heads.beta_head")(int)
    assert len(registry) == 0


@pytest.mark.parametrize("registry", [BODIES, BOX_HEADS, MASK_HEADS, KEYPOINT_HEADS, ROI_BRANCHES, MODEL_TYPES])
def test_every_registered_entry_is_a_class_built_by_from_cfg(registry):
    assert len(registry) > 0
    for name in registry:
        entry = registry.get(name)
        assert isinstance(entry.cls, type) and callable(entry.cls.from_cfg), name
        assert set(entry.preset) <= set(inspect.signature(entry.cls.from_cfg).parameters), name


def test_modeling_builds_from_cfg_only_through_from_cfg():
    """No free function in modeling/ builds a module from the config: outside `from_cfg`
    classmethods only the model entry point and a few key readers take `cfg`."""
    key_readers = {"build_model", "model_type", "resnet_norm_from_cfg", "freeze_at_from_cfg",
                   "fpn_min_max_levels", "roi_branch_names"}  # fmt: skip
    free = []
    for path in sorted(MODELING.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.args.args and node.args.args[0].arg == "cfg":
                if node.name not in key_readers:
                    free.append(f"{path.relative_to(MODELING)}:{node.name}")
    assert free == []


def test_unknown_body_error_lists_close_names():
    with pytest.raises(KeyError, match="ResNet.ResNet50_conv5_body"):
        BODIES.get("ResNet.ResNet50_conv6_body")
