"""The generic walker and Detectron's loading rules on toy modules: `_[xyz]_` sharing, subtree
coverage, orphans, class-count changes, zero matches, and affine blobs in BatchNorm-style norms."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import build, config_tree, random_blobs, write_detectron_pkl  # noqa: E402

from pydetectron.nn import FrozenBatchNorm2d  # noqa: E402
from pydetectron.weights import WeightsError, detectron_names, load_weights, model_to_detectron_blobs  # noqa: E402


class ToyMaskHead(nn.Module):
    """Declares Detectron's mask-head names: `_[mask]_fcn1`, `_[mask]_fcn2` and `mask_fcn_logits`."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.fcn1 = nn.Conv2d(4, 4, 3, padding=1)
        self.fcn2 = nn.Conv2d(4, 4, 3, padding=1)
        self.logits = nn.Conv2d(4, num_classes, 1)
        self.inner = Inner()  # declares a mapping too, but the head covers its subtree

    def detectron_weight_mapping(self):
        mapping = {
            "fcn1.weight": "_[mask]_fcn1_w", "fcn1.bias": "_[mask]_fcn1_b",
            "fcn2.weight": "_[mask]_fcn2_w", "fcn2.bias": "_[mask]_fcn2_b",
            "logits.weight": "mask_fcn_logits_w", "logits.bias": "mask_fcn_logits_b",
            "inner.lin.weight": "inner_w",
        }  # fmt: skip
        return mapping, ["fcn_classifier_w"]


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2, bias=False)

    def detectron_weight_mapping(self):
        return {"lin.weight": "never_used_name"}, []


class Toy(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.head = ToyMaskHead(num_classes)
        self.extra = nn.Linear(2, 2)  # declares nothing


def arrays(names_and_shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape).astype(np.float32) for name, shape in names_and_shapes.items()}


SHAPES = {
    "fcn1_w": (4, 4, 3, 3), "fcn1_b": (4,), "_[mask]_fcn2_w": (4, 4, 3, 3), "_[mask]_fcn2_b": (4,),
    "fcn2_w": (4, 4, 3, 3), "mask_fcn_logits_w": (3, 4, 1, 1), "mask_fcn_logits_b": (3,), "inner_w": (2, 2),
    "fcn_classifier_w": (10, 4),
}  # fmt: skip


def test_walker_takes_the_first_declaring_module_on_each_path():
    names = detectron_names(Toy())
    assert names.blobs["head.inner.lin.weight"] == "inner_w"  # the head's declaration, not Inner's
    assert "never_used_name" not in names.blobs.values()
    assert not any(name.startswith("extra.") for name in names.blobs)
    assert names.orphans == ["fcn_classifier_w"]


def test_bracket_blobs_load_from_the_plain_name_when_the_file_lacks_them(tmp_path):
    blobs = arrays(SHAPES)
    model = Toy()
    report = load_weights(model, write_detectron_pkl(tmp_path / "mask.pkl", blobs))
    head = model.head
    # _[mask]_fcn1_* are not in the file: they come from fcn1_*
    assert torch.equal(head.fcn1.weight, torch.from_numpy(blobs["fcn1_w"]))
    assert torch.equal(head.fcn1.bias, torch.from_numpy(blobs["fcn1_b"]))
    # _[mask]_fcn2_* are in the file: they are used, and the plain fcn2_w is left unused
    assert torch.equal(head.fcn2.weight, torch.from_numpy(blobs["_[mask]_fcn2_w"]))
    assert torch.equal(head.logits.weight, torch.from_numpy(blobs["mask_fcn_logits_w"]))
    assert report.unused == ["fcn2_w"]
    assert report.ignored == ["fcn_classifier_w"]
    assert sorted(report.missing) == ["extra.bias", "extra.weight"]


def test_class_dependent_tensors_of_another_shape_are_skipped_and_listed(tmp_path, caplog):
    blobs = arrays(SHAPES)
    blobs["mask_fcn_logits_w"] = np.ones((81, 4, 1, 1), np.float32)
    blobs["mask_fcn_logits_b"] = np.ones(81, np.float32)
    model = Toy(num_classes=3)
    before = model.head.logits.weight.detach().clone()
    report = load_weights(model, write_detectron_pkl(tmp_path / "coco.pkl", blobs))
    assert report.skipped == {
        "head.logits.weight": ((81, 4, 1, 1), (3, 4, 1, 1)),
        "head.logits.bias": ((81,), (3,)),
    }
    assert torch.equal(model.head.logits.weight, before)
    assert torch.equal(model.head.fcn1.weight, torch.from_numpy(blobs["fcn1_w"]))
    assert "skipped 2 tensors whose shapes differ" in caplog.text
    assert "head.logits.weight file (81, 4, 1, 1) vs model (3, 4, 1, 1)" in caplog.text


def test_a_file_with_nothing_for_the_model_is_an_error(tmp_path):
    path = write_detectron_pkl(tmp_path / "other.pkl", {"something_w": np.zeros((2, 2), np.float32)})
    with pytest.raises(WeightsError, match=r"no tensor of the file fits the model.*something_w"):
        load_weights(Toy(), path)
    shapes_only = {k: np.zeros((7,) + v[1:], np.float32) for k, v in SHAPES.items()}
    with pytest.raises(WeightsError, match="differ in shape"):
        load_weights(Toy(), write_detectron_pkl(tmp_path / "wrong.pkl", shapes_only))


def test_a_module_declaring_a_tensor_it_lacks_is_named():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def detectron_weight_mapping(self):
            return {"conv.weight": "c_w", "cnv.bias": "c_b"}, []

    with pytest.raises(ValueError, match=r"Broken\).detectron_weight_mapping names tensors it does not have.*cnv"):
        detectron_names(nn.Sequential(Broken()))


SHAPES_CFG = "shapes/e2e_faster_rcnn_R-50-FPN_shapes.yaml"
NARROW = ["RESNETS.WIDTH_PER_GROUP", "8", "FPN.DIM", "16", "FAST_RCNN.MLP_HEAD_DIM", "32"]


@pytest.mark.parametrize("norm", ["BN", "FrozenBN"])
def test_affine_blobs_in_batchnorm_bodies_compute_what_affine_channel_computes(tmp_path, norm):
    """Detectron's `_bn_s/_bn_b` are an affine transform; a BatchNorm-style body must apply exactly it."""
    affine = build(config_tree(SHAPES_CFG, NARROW + ["RESNETS.NORM", "AffineChannel"]))
    other = build(config_tree(SHAPES_CFG, NARROW + ["RESNETS.NORM", norm]), seed=5)
    blobs = random_blobs(affine, seed=7)
    path = write_detectron_pkl(tmp_path / "affine.pkl", blobs)
    load_weights(affine, path)
    report = load_weights(other, path)
    assert report.missing == [] and report.unused == []
    assert report.derived and all(name.endswith(("running_mean", "running_var")) for name in report.derived)
    image = torch.rand(1, 3, 64, 64) * 100
    with torch.no_grad():
        expected = affine.body(image)
        got = other.body(image)
    assert list(expected) == list(got)
    for e, g in zip(expected.values(), got.values()):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * float(e.abs().max()))
    assert any(isinstance(m, nn.BatchNorm2d | FrozenBatchNorm2d) for m in other.modules())


def test_model_to_detectron_blobs_folds_batchnorm_statistics():
    model = build(config_tree(SHAPES_CFG, NARROW + ["RESNETS.NORM", "FrozenBN"]))
    norm = model.get_submodule(next(n for n, m in model.named_modules() if isinstance(m, FrozenBatchNorm2d)))
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(1.0)
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(4.0 - norm.eps)
    blobs = model_to_detectron_blobs(model)
    # y = (x - 3) / 2 * 2 + 1 = x - 2: scale 1, shift -2 (hand-computed)
    torch.testing.assert_close(blobs["res_conv1_bn_s"], torch.ones(64))
    torch.testing.assert_close(blobs["res_conv1_bn_b"], torch.full((64,), -2.0))
