"""End-to-end: our model with a torchvision fasterrcnn_resnet50_fpn state dict returns
torchvision's detections (same classes, scores within 1e-4, boxes within 0.01 px)."""

from pathlib import Path

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file
from pydetectron.modeling.model_builder import build_model
from pydetectron.weights import load_weights

PRESET = Path(__file__).resolve().parents[2] / "configs" / "torchvision" / "fasterrcnn_resnet50_fpn.yaml"


def random_torchvision_model() -> torch.nn.Module:
    """A randomly initialised model whose norms and classifier give real detections."""
    torch.manual_seed(0)
    # min/max size chosen so that padded inputs are multiples of 64 (see the preset's note)
    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=256, max_size=512)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.roi_heads.box_predictor.cls_score.weight.normal_(0, 0.5)
        model.roi_heads.box_predictor.bbox_pred.weight.normal_(0, 0.01)
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tv = random_torchvision_model()
    path = tmp_path_factory.mktemp("weights") / "fasterrcnn_resnet50_fpn.pth"
    torch.save(tv.state_dict(), path)
    cfg = get_cfg()
    merge_cfg_from_file(PRESET, target=cfg)
    assert_and_infer_cfg(target=cfg)
    ours = build_model(cfg).eval()
    report = load_weights(ours, path)
    assert report.source_format == "torchvision detection"
    assert report.missing == []
    assert all(name.endswith("num_batches_tracked") for name in report.unused)
    return tv, ours


@pytest.mark.slow
@pytest.mark.parametrize("height,width", [(200, 300), (330, 250)])
def test_detections_match_torchvision(models, height, width):
    tv, ours = models
    torch.manual_seed(height)
    image = torch.rand(3, height, width)
    with torch.no_grad():
        expected = tv([image])[0]
        batch, _ = tv.transform([image])
        (h, w) = batch.image_sizes[0]
        im_info = torch.tensor([[h, w, h / height]])
        got = ours(batch.tensors, im_info, original_sizes=[(height, width)])[0]
    assert expected["scores"].numel() >= 10, "the random model should produce detections to compare"
    assert got.scores.numel() == expected["scores"].numel()
    order_tv = torch.argsort(expected["scores"], descending=True)
    order_ours = torch.argsort(got.scores, descending=True)
    assert torch.equal(got.classes[order_ours], expected["labels"][order_tv])
    torch.testing.assert_close(got.scores[order_ours], expected["scores"][order_tv], rtol=0, atol=1e-4)
    torch.testing.assert_close(got.boxes[order_ours], expected["boxes"][order_tv], rtol=0, atol=0.01)
