"""`toolbox.<backbone>+<neck>` conv bodies: name resolution, the body contract at an odd size,
the detection forms of the ported families, freezing, and weights from a local file."""

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pydetectron.backbones import build_backbone
from pydetectron.classification import build_classifier, classifier_checkpoint, save_checkpoint
from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_list
from pydetectron.modeling import BODIES
from pydetectron.modeling.backbones.toolbox_body import (
    ToolboxBody,
    ToolboxSettings,
    default_global_blocks,
)
from pydetectron.modeling.model_builder import build_model
from pydetectron.weights import WeightsError, load_initial_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread  # noqa: E402

TINY_SWIN = {"embed_dim": 32, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8)}
# (backbone, neck, constructor overrides that keep the test small)
FAMILIES = [
    ("darknet_yolov5n", "fpn", {}),
    ("vovnet19_slim_ese", "pan", {}),
    ("mobilenet_v3_small", "bifpn", {}),
    ("swin_t", "fpn", TINY_SWIN),
    ("convnextv2_a", "fpn", {}),
    ("vit_ti16", "simple_fpn", {"depth": 3}),
]
ODD = (129, 161)


def body_for(backbone, neck, kwargs, max_level=6, **settings):
    torch.manual_seed(0)
    options = ToolboxSettings(backbone_kwargs=kwargs, neck_channels=32, **settings)
    return ToolboxBody(backbone, neck, options, min_level=2, max_level=max_level).eval()


def test_prefix_resolves_any_backbone_and_neck_and_names_bad_parts():
    entry = BODIES.get("toolbox.vovnet19_slim_ese+fpn")
    assert entry.cls is ToolboxBody and dict(entry.preset) == {"backbone_name": "vovnet19_slim_ese", "neck": "fpn"}
    assert "FPN.fpn_ResNet50_conv5_body" in BODIES  # registered names still work
    with pytest.raises(KeyError, match=r"unknown neck 'fpm'.*'fpn', 'pan'"):
        BODIES.get("toolbox.vovnet19_slim_ese+fpm")
    with pytest.raises(KeyError, match=r"did you mean.*vovnet19_slim_ese"):
        BODIES.get("toolbox.vovnet19_slim_es+fpn")
    with pytest.raises(KeyError, match=r"expected 'toolbox.<backbone>\+<neck>'"):
        BODIES.get("toolbox.vovnet19_slim_ese")


@pytest.mark.parametrize("backbone,neck,kwargs", FAMILIES, ids=[f"{b}+{n}" for b, n, _ in FAMILIES])
def test_output_shape_matches_the_maps_at_an_odd_size(backbone, neck, kwargs):
    body = body_for(backbone, neck, kwargs)
    x = torch.randn(1, 3, *ODD)
    with torch.no_grad(), one_torch_thread():
        out = body(x)
        reference = body.backbone.net.get_feature_maps(x)  # the backbone on its own
        bottom = body.backbone(x)
    shapes = body.output_shape()
    assert list(out) == list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    patch = getattr(body.backbone.net, "patch_size", 1)
    padded = [math.ceil(side / patch) * patch for side in ODD]  # ViTs pad to whole patches
    for name, spec in shapes.items():
        assert spec.stride == 2 ** int(name[1:]) and spec.channels == 32
        assert out[name].shape[:2] == (1, 32)
        for side, padded_side, got in zip(ODD, padded, out[name].shape[2:]):
            assert side // spec.stride <= got <= math.ceil(padded_side / spec.stride), (name, out[name].shape)
    if neck != "bifpn":  # BiFPN fuses its extra level with the others (EfficientDet)
        # P6 is P5 subsampled (max-pool, kernel 1, stride 2), as Detectron's FPN body makes it
        assert torch.equal(out["p6"], out["p5"][:, :, ::2, ::2])
    # the body feeds the neck the backbone's own maps at strides 4..32
    kept = [m for m in reference if x.shape[-1] / m.shape[-1] >= 3]
    assert [tuple(m.shape) for m in bottom.values()] == [tuple(m.shape) for m in kept]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(bottom.values(), kept))


def test_without_p6_and_with_the_semantic_fpn_single_map():
    body = body_for("resnet18", "fpn", {}, max_level=5)
    assert list(body.output_shape()) == ["p2", "p3", "p4", "p5"]
    body = body_for("resnet18", "semantic_fpn", {}, max_level=5)
    assert dict(body.output_shape()) == {"p2": (32, 4)}
    with torch.no_grad():
        assert body(torch.randn(1, 3, 64, 96))["p2"].shape == (1, 32, 16, 24)
    with pytest.raises(ValueError, match="semantic_fpn.*MULTILEVEL_RPN"):
        body_for("resnet18", "semantic_fpn", {}, max_level=6)


def test_bad_neck_choices_are_named():
    with pytest.raises(ValueError, match="simple_fpn neck takes a plain ViT's single map"):
        body_for("resnet18", "simple_fpn", {})
    with pytest.raises(ValueError, match="TOOLBOX.NECK_NORM 'LN' does not fit the fpn neck"):
        body_for("resnet18", "fpn", {}, neck_norm="LN")
    with pytest.raises(ValueError, match="patch-14 ViT"):
        body_for("vit_s14_reg4_dinov2", "simple_fpn", {"depth": 1})


def test_vitdet_form_windows_global_blocks_and_padding():
    assert default_global_blocks(12) == (2, 5, 8, 11)  # ViTDet ViT-B
    assert default_global_blocks(24) == (5, 11, 17, 23)  # ViT-L
    assert default_global_blocks(32) == (7, 15, 23, 31)  # ViT-H
    body = body_for("vit_ti16", "simple_fpn", {"depth": 8}, vit_window_size=4)
    vit = body.backbone.net
    assert [b.window_size for b in vit.blocks] == [4, 0] * 4  # default global blocks 1, 3, 5, 7 of 8
    assert all(b.attn.rel_pos_h is not None for b in vit.blocks) and vit.cls_token is None
    # an odd-sized input gives exactly what its zero-padded (to whole patches) version gives
    x = torch.randn(1, 3, 77, 90)
    with torch.no_grad():
        odd = body(x)
        padded = body(F.pad(x, (0, 96 - 90, 0, 80 - 77)))
    assert all(torch.allclose(odd[k], padded[k], atol=1e-5) for k in odd)
    assert odd["p4"].shape[-2:] == (5, 6)


@pytest.mark.parametrize("backbone,kwargs", [("swin_t", TINY_SWIN), ("convnextv2_a", {})])
def test_swin_and_convnext_outputs_are_layer_normalised(backbone, kwargs):
    body = body_for(backbone, "fpn", kwargs)
    with torch.no_grad():
        maps = body.backbone(torch.randn(2, 3, 96, 128))
    assert [m.shape[-1] for m in maps.values()] == [32, 16, 8, 4]
    for m in maps.values():  # LayerNorm over channels (initial weight 1, bias 0) at every pixel
        assert m.mean(dim=1).abs().max() < 1e-4
        assert torch.allclose(m.var(dim=1, unbiased=False), torch.ones(()), atol=1e-2)


def test_freeze_at_freezes_the_stages_up_to_that_stride():
    body = body_for("darknet_yolov5n", "fpn", {}, freeze_at=2)
    net = body.backbone.net  # stem: stride 2, stages[0]: 4, stages[1]: 8, ...
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert not any(p.requires_grad for p in net.stages[0].parameters())
    assert all(p.requires_grad for stage in net.stages[1:] for p in stage.parameters())
    assert all(p.requires_grad for p in body.neck.parameters())


def tiny_cfg(body, *extra):
    cfg = get_cfg()
    merge_cfg_from_list(
        ["MODEL.TYPE", "generalized_rcnn", "MODEL.CONV_BODY", body, "MODEL.NUM_CLASSES", "4",
         "MODEL.FASTER_RCNN", "True",
         "FPN.FPN_ON", "True", "FPN.MULTILEVEL_RPN", "True", "FPN.MULTILEVEL_ROIS", "True",
         "FAST_RCNN.ROI_BOX_HEAD", "fast_rcnn_heads.roi_2mlp_head", "FAST_RCNN.ROI_XFORM_METHOD", "RoIAlign",
         "FAST_RCNN.MLP_HEAD_DIM", "32", "TOOLBOX.NECK_CHANNELS", "32", *extra],
        target=cfg,
    )  # fmt: skip
    assert_and_infer_cfg(target=cfg)
    return cfg


def write_classifier(tmp_path, backbone_name, **kwargs):
    torch.manual_seed(1)
    classifier = build_classifier(backbone_name, num_classes=3)
    classifier.backbone = build_backbone(backbone_name, **kwargs)
    path = tmp_path / f"{backbone_name}.pth"
    save_checkpoint(classifier_checkpoint(classifier, backbone_name, ["a", "b", "c"]), path)
    return classifier, path


def assert_same_backbone(model, classifier):
    ours, theirs = model.body.backbone.net.state_dict(), classifier.backbone.state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_train_weights_naming_a_classifier_checkpoint_initialise_the_body(tmp_path):
    classifier, path = write_classifier(tmp_path, "vovnet19_slim_ese")
    cfg = tiny_cfg("toolbox.vovnet19_slim_ese+fpn", "TRAIN.WEIGHTS", str(path))
    model = build_model(cfg)
    (report,) = load_initial_weights(model, cfg)
    assert_same_backbone(model, classifier)
    assert report.source_format == "pydetectron classifier checkpoint"
    assert report.ignored == ["head.bias", "head.weight"]
    assert all(name.startswith("body.backbone.net.") for name in report.loaded)
    # TOOLBOX.PRETRAINED takes the same file when the body is built
    model = build_model(tiny_cfg("toolbox.vovnet19_slim_ese+fpn", "TOOLBOX.PRETRAINED", str(path)))
    assert_same_backbone(model, classifier)


def test_a_classifier_of_a_ported_backbone_initialises_its_detection_form(tmp_path):
    classifier, path = write_classifier(tmp_path, "vit_ti16", depth=2)
    cfg = tiny_cfg("toolbox.vit_ti16+simple_fpn", "TRAIN.WEIGHTS", str(path), "TOOLBOX.BACKBONE_KWARGS",
                   "{'depth': 2}", "TOOLBOX.VIT_WINDOW_SIZE", "4")  # fmt: skip
    model = build_model(cfg)
    load_initial_weights(model, cfg)
    ours, theirs = model.body.backbone.net.state_dict(), classifier.backbone.state_dict()
    assert torch.equal(ours.pop("pos_embed"), theirs["pos_embed"][:, 1:])  # without the class token's entry
    for name, value in ours.items():  # the ViTDet form has no class token / final norm, new rel-pos tables
        if ".rel_pos_" not in name:
            assert torch.equal(value, theirs[name]), name


def test_a_classifier_of_another_backbone_is_refused_in_one_line_naming_the_file(tmp_path):
    _, path = write_classifier(tmp_path, "darknet_yolov5n")
    cfg = tiny_cfg("toolbox.vovnet19_slim_ese+fpn", "TRAIN.WEIGHTS", str(path))
    with pytest.raises(WeightsError, match=r"TRAIN.WEIGHTS: .*darknet_yolov5n.pth.*does not fit VoVNet") as error:
        load_initial_weights(build_model(cfg), cfg)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"TOOLBOX.PRETRAINED .*darknet_yolov5n.pth.*missing") as error:
        build_model(tiny_cfg("toolbox.vovnet19_slim_ese+fpn", "TOOLBOX.PRETRAINED", str(path)))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"TOOLBOX.PRETRAINED .*nowhere.pth.*not found"):
        build_model(tiny_cfg("toolbox.vovnet19_slim_ese+fpn", "TOOLBOX.PRETRAINED", str(tmp_path / "nowhere.pth")))


def test_backbone_kwargs_must_be_a_dict_literal():
    with pytest.raises(ValueError, match="TOOLBOX.BACKBONE_KWARGS"):
        build_model(tiny_cfg("toolbox.vit_ti16+simple_fpn", "TOOLBOX.BACKBONE_KWARGS", "depth=2"))
