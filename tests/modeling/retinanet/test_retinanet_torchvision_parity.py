"""End-to-end parity with torchvision's retinanet_resnet50_fpn through the preset, as a user runs it.

A randomly initialised torchvision retinanet_resnet50_fpn is saved to a file; our model built from
configs/torchvision/retinanet_resnet50_fpn.yaml loads it and, through `Predictor` on a uint8 BGR
image of an odd size, returns torchvision's detections (run on the same image as torchvision's
users do: RGB float in [0, 1]): same classes, scores within 1e-4, boxes within 0.01 px. In
training, on the same batch and ground truth, its losses are torchvision's compute_loss.

torchvision's classifier has a logit for class 0 that it can report as label 0; a trained model
never scores it above the threshold, and ours never reports it. The random model here gets a
very negative background bias so that torchvision does not report it either.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import detection

from pydetectron import Predictor
from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.modeling.model_builder import build_model
from pydetectron.structures.ground_truth import GroundTruth
from pydetectron.weights import load_weights

PRESET = Path(__file__).resolve().parents[3] / "configs" / "torchvision" / "retinanet_resnet50_fpn.yaml"
# a small test scale keeps the CPU time down; both sides use it
MIN_SIZE, MAX_SIZE = 320, 512
SIZES = [(427, 640), (333, 250)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A ResNet-50 on a busy 2-core machine runs faster single-threaded."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def randomised_torchvision(num_classes: int = 91, **kwargs) -> torch.nn.Module:
    """Norms, towers and classifier that give real, well separated detections."""
    torch.manual_seed(0)
    model = detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        for branch in (model.head.classification_head, model.head.regression_head):
            for module in branch.conv.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.normal_(0, (2.0 / (module.in_channels * 9)) ** 0.5)
        cls_logits = model.head.classification_head.cls_logits
        cls_logits.weight.normal_(0, 0.02)
        cls_logits.bias.view(-1, num_classes)[:, 0] = -30.0
        model.head.regression_head.bbox_reg.weight.normal_(0, 0.01)
    return model.eval()


def preset(extra: list[str] | None = None):
    cfg = get_cfg()
    merge_cfg_from_file(PRESET, target=cfg)
    merge_cfg_from_list(extra or [], target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tv = randomised_torchvision(min_size=MIN_SIZE, max_size=MAX_SIZE)
    path = tmp_path_factory.mktemp("weights") / "retinanet.pth"
    torch.save(tv.state_dict(), path)
    predictor = Predictor(
        preset(["TEST.SCALE", str(MIN_SIZE), "TEST.MAX_SIZE", str(MAX_SIZE)]), str(path), device="cpu"
    )
    report = predictor.load_report
    assert report.source_format == "torchvision detection"
    assert report.missing == []
    assert all(name.endswith("num_batches_tracked") for name in report.unused)
    return tv, predictor


@pytest.mark.slow
@pytest.mark.parametrize("height,width", SIZES)
def test_predictor_matches_torchvision(models, height, width):
    tv, predictor = models
    rng = np.random.default_rng(height)
    image_bgr = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    got = predictor(image_bgr)
    rgb = torch.from_numpy(np.ascontiguousarray(image_bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        expected = tv([rgb])[0]
    assert expected["scores"].numel() >= 5, "the random model should produce detections to compare"
    assert (expected["labels"] > 0).all()
    assert len(got) == expected["scores"].numel()
    order_tv = torch.argsort(expected["scores"], descending=True, stable=True).numpy()
    order_ours = np.argsort(-got.scores, kind="stable")
    np.testing.assert_array_equal(got.classes[order_ours], expected["labels"].numpy()[order_tv])
    np.testing.assert_allclose(got.scores[order_ours], expected["scores"].numpy()[order_tv], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.boxes[order_ours], expected["boxes"].numpy()[order_tv], rtol=0, atol=0.01)


def test_training_losses_match_torchvision():
    tv = randomised_torchvision(num_classes=7, min_size=128, max_size=192)
    ours = build_model(preset(["MODEL.NUM_CLASSES", "7"]))
    report = load_weights(ours, tv.state_dict())
    assert report.missing == []
    images = [torch.rand(3, 120, 160), torch.rand(3, 150, 100)]
    boxes = [
        torch.tensor([[10.0, 20, 90, 100], [50, 60, 140, 110], [3, 4, 12, 15]]),
        torch.tensor([[30.0, 40, 90, 140]]),
    ]
    targets = [{"boxes": b, "labels": c} for b, c in zip(boxes, [torch.tensor([1, 6, 3]), torch.tensor([2])])]
    with torch.no_grad():
        batch, resized = tv.transform(images, targets)
        features = list(tv.backbone(batch.tensors).values())
        expected = tv.compute_loss(resized, tv.head(features), tv.anchor_generator(batch, features))
        im_info = torch.tensor([[h, w, 1.0] for h, w in batch.image_sizes])
        gt = [GroundTruth(t["boxes"], t["labels"]) for t in resized]
        got = ours.train()(batch.tensors, im_info, gt)
    assert got["retnet_fg_num"] > 0
    torch.testing.assert_close(got["loss_retnet_cls"], expected["classification"], rtol=1e-5, atol=0)
    torch.testing.assert_close(got["loss_retnet_bbox"], expected["bbox_regression"], rtol=1e-5, atol=0)


def test_torchvision_v1_head_names_load():
    """Checkpoints saved before torchvision's Conv2dNormActivation heads name the tower convs
    `conv.0`, `conv.2`, ... (torchvision converts them on load); they load the same tensors."""
    state = randomised_torchvision(num_classes=7).state_dict()
    old = {}
    for name, value in state.items():
        parts = name.split(".")
        if parts[0] == "head" and parts[2] == "conv":
            name = ".".join(parts[:3] + [str(2 * int(parts[3]))] + parts[5:])
        old[name] = value
    assert "head.classification_head.conv.6.weight" in old
    ours = build_model(preset(["MODEL.NUM_CLASSES", "7"]))
    report = load_weights(ours, old)
    assert report.source_format == "torchvision detection" and report.missing == []
    tower = ours.head.cls_tower[3].weight
    assert torch.equal(tower, state["head.classification_head.conv.3.0.weight"])
    assert torch.equal(ours.head.bbox_tower[1].bias, state["head.regression_head.conv.1.0.bias"])
