"""ImageNet body weights: Caffe/Detectron `.pkl` (BN and GN) and torchvision ResNet/ResNeXt `.pth`.

torchvision files are checked against torchvision itself: our body, loaded from the file,
must compute torchvision's stage outputs (BatchNorm copied as is, or folded into
AffineChannel), and each tensor must sit where the body's own torchvision names say.
"""

import logging
import re
import sys
from pathlib import Path

import pytest
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import build, config_tree, expected_state, imagenet_junk, random_blobs, write_py2_pickle  # noqa: E402

from pydetectron.modeling.backbones.resnet import ResNetBody  # noqa: E402
from pydetectron.weights import detectron_names, load_weights  # noqa: E402

# Detectron.pytorch's pattern of ResNet body blobs (resnet_weights_name_pattern), written out here.
BODY_BLOB = re.compile(r"conv1_w|conv1_gn_[sb]|res_conv1_.+|res\d+_\d+_.+")
NARROW = ["RESNETS.WIDTH_PER_GROUP", "8", "FPN.DIM", "16", "FAST_RCNN.MLP_HEAD_DIM", "32"]
GN = ["RESNETS.TRANS_FUNC", "bottleneck_gn_transformation", "RESNETS.STEM_FUNC", "basic_gn_stem",
      "RESNETS.SHORTCUT_FUNC", "basic_gn_shortcut", "GROUP_NORM.NUM_GROUPS", "8"]  # fmt: skip


def imagenet_pkl(tmp_path, model, gn=False, seed=0):
    blobs = {k: v for k, v in random_blobs(model, seed=seed).items() if BODY_BLOB.fullmatch(k)}
    junk = imagenet_junk(blobs, gn=gn)
    junk = {k: v for k, v in junk.items() if not k.endswith("_momentum")}  # ImageNet files have none
    path = write_py2_pickle(tmp_path / ("R-50-GN.pkl" if gn else "R-50.pkl"), blobs | junk)
    return path, blobs, junk


@pytest.mark.parametrize(
    "config, extra",
    [("baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml", []), ("baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml", GN),
     ("baselines/e2e_faster_rcnn_R-50-C4_1x.yaml", [])],
    ids=["R-50-FPN", "R-50-GN-FPN", "R-50-C4"],
)  # fmt: skip
def test_caffe_imagenet_pkl_initialises_the_body(tmp_path, caplog, config, extra):
    model = build(config_tree(config, NARROW + extra))
    path, blobs, junk = imagenet_pkl(tmp_path, model, gn=bool(extra))
    with caplog.at_level(logging.INFO, logger="pydetectron.weights"):
        report = load_weights(model, path)
    assert report.source_format == "Caffe ImageNet .pkl" and report.body_only
    assert report.unused == [] and report.skipped == {}
    assert report.ignored == sorted(junk)
    expected = expected_state(model, blobs)
    assert set(report.loaded) == set(expected)
    for name, value in expected.items():
        assert torch.equal(model.state_dict()[name], value), name
    # what stays: FPN, RPN and box outputs; with C4 the res5 of the box head loads too
    assert report.missing and len(report.missing) + len(report.loaded) == len(model.state_dict())
    if "C4" in config:
        assert any(b.startswith("res5_") for b in blobs)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def randomise_batchnorm(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
    return model.eval()


def torchvision_stages(net, image):
    x = net.maxpool(net.relu(net.bn1(net.conv1(image))))
    out = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        out.append(x)
    return out


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    torch.manual_seed(0)
    net = randomise_batchnorm(torchvision.models.resnet50(weights=None), seed=1)
    path = tmp_path_factory.mktemp("tv") / "resnet50-0123abcd.pth"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.mark.parametrize("norm", ["FrozenBN", "BN", "AffineChannel"])
def test_torchvision_resnet50_body_computes_torchvision_stages(resnet50_file, norm):
    net, path = resnet50_file
    body = ResNetBody((3, 4, 6, 3), stride_1x1=False, norm=norm, freeze_at=0).eval()
    report = load_weights(body, path)
    assert report.source_format == "torchvision ImageNet"
    assert report.missing == [] and report.unused == [] and report.skipped == {} and report.notes == []
    assert set(report.ignored) == {"fc.weight", "fc.bias"} | {k for k in net.state_dict() if "num_batches" in k}
    theirs = net.state_dict()
    ours = body.state_dict()
    if norm != "AffineChannel":  # copied as is, statistics included
        for our_name, their_name in body.torchvision_weight_mapping().items():
            assert torch.equal(ours[our_name], theirs[their_name]), our_name
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = torchvision_stages(net, image)
        body.out_features = list(body.stage_names)
        got = list(body(image).values())
    assert len(got) == len(expected) == 4
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * float(e.abs().max()))


def test_torchvision_resnext_groups_load(tmp_path):
    torch.manual_seed(0)
    net = randomise_batchnorm(torchvision.models.resnext50_32x4d(weights=None), seed=2)
    path = tmp_path / "resnext50_32x4d.pth"
    torch.save(net.state_dict(), path)
    body = ResNetBody((3, 4, 6, 3), num_groups=32, width_per_group=4, stride_1x1=False, norm="FrozenBN").eval()
    report = load_weights(body, path)
    assert report.missing == [] and report.unused == []
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = torchvision_stages(net, image)[-1]
        got = body(image)["res5"]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_torchvision_resnet_fills_the_res5_of_a_c4_box_head(resnet50_file):
    net, path = resnet50_file
    model = build(config_tree("baselines/e2e_faster_rcnn_R-50-C4_1x.yaml", ["RESNETS.STRIDE_1X1", "False"]))
    report = load_weights(model, path)
    assert report.unused == []  # layer4 went into the head's res5
    theirs = net.state_dict()
    ours = model.state_dict()
    blobs = detectron_names(model).blobs
    head_res5 = [n for n, b in blobs.items() if b == "res5_2_branch2c_w"]
    assert len(head_res5) == 1
    folded_scale = theirs["layer4.2.bn3.weight"] / torch.sqrt(theirs["layer4.2.bn3.running_var"] + 1e-5)
    scale_name = next(n for n, b in blobs.items() if b == "res5_2_branch2c_bn_s")
    torch.testing.assert_close(ours[scale_name], folded_scale)
    assert torch.equal(ours[head_res5[0]], theirs["layer4.2.conv3.weight"])


def test_stride_placement_mismatch_is_noted(resnet50_file):
    _, path = resnet50_file
    body = ResNetBody((3, 4, 6, 3), stride_1x1=True, norm="AffineChannel")
    report = load_weights(body, path)
    assert report.notes and "RESNETS.STRIDE_1X1: False" in report.notes[0]


def test_unknown_torchvision_names_are_reported(tmp_path, resnet50_file):
    net, _ = resnet50_file
    state = dict(net.state_dict())
    state["layer1.0.se.fc.weight"] = torch.zeros(4, 4)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    report = load_weights(ResNetBody((3, 4, 6, 3), stride_1x1=False, norm="FrozenBN"), path)
    assert report.unused == ["layer1.0.se.fc.weight"]
    assert report.missing == []
