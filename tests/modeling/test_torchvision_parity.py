"""End-to-end parity with torchvision's detection models through `Predictor`, as a user calls it.

A randomly initialised torchvision fasterrcnn / maskrcnn / keypointrcnn_resnet50_fpn is saved
to a file; our model built from the matching preset in configs/torchvision loads it and, on a
uint8 BGR image of an odd size, returns torchvision's detections (run on the same image as
torchvision's users do: RGB float in [0, 1]): same classes, scores within 1e-4, boxes within
0.01 px, masks with IoU > 0.99 per instance, keypoints within a pixel.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import detection

from pydetectron import Predictor
from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "torchvision"
# a small test scale keeps the CPU time down; both sides use it
MIN_SIZE, MAX_SIZE = 320, 512
SIZES = [(427, 640), (333, 250)]


def _randomise(model: torch.nn.Module, classifier: torch.nn.Module) -> torch.nn.Module:
    """Norms and classifier that give real (and well separated) detections."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        classifier.cls_score.weight.normal_(0, 0.5)
        classifier.bbox_pred.weight.normal_(0, 0.01)
    return model.eval()


def torchvision_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"weights": None, "weights_backbone": None, "min_size": MIN_SIZE, "max_size": MAX_SIZE}
    if kind == "faster":
        model = detection.fasterrcnn_resnet50_fpn(**kwargs)
    elif kind == "mask":
        model = detection.maskrcnn_resnet50_fpn(**kwargs)
    else:
        model = detection.keypointrcnn_resnet50_fpn(**kwargs)
    return _randomise(model, model.roi_heads.box_predictor)


PRESET_FILES = {
    "faster": "fasterrcnn_resnet50_fpn.yaml",
    "mask": "maskrcnn_resnet50_fpn.yaml",
    "keypoint": "keypointrcnn_resnet50_fpn.yaml",
}


@pytest.fixture(scope="module", params=["faster", "mask", "keypoint"])
def models(request, tmp_path_factory):
    kind = request.param
    tv = torchvision_model(kind)
    path = tmp_path_factory.mktemp("weights") / f"{kind}.pth"
    torch.save(tv.state_dict(), path)
    cfg = get_cfg()
    merge_cfg_from_file(PRESETS / PRESET_FILES[kind], target=cfg)
    merge_cfg_from_list(["TEST.SCALE", str(MIN_SIZE), "TEST.MAX_SIZE", str(MAX_SIZE)], target=cfg)
    assert_and_infer_cfg(target=cfg)
    predictor = Predictor(cfg, str(path), device="cpu")
    report = predictor.load_report
    assert report.source_format == "torchvision detection"
    assert report.missing == []
    assert all(name.endswith("num_batches_tracked") for name in report.unused)
    return kind, tv, predictor


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.slow
@pytest.mark.parametrize("height,width", SIZES)
def test_predictor_matches_torchvision(models, height, width):
    kind, tv, predictor = models
    rng = np.random.default_rng(height)
    image_bgr = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    got = predictor(image_bgr)
    rgb = torch.from_numpy(np.ascontiguousarray(image_bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        expected = tv([rgb])[0]
    assert expected["scores"].numel() >= 5, "the random model should produce detections to compare"
    assert len(got) == expected["scores"].numel()
    order_tv = torch.argsort(expected["scores"], descending=True, stable=True).numpy()
    order_ours = np.argsort(-got.scores, kind="stable")
    np.testing.assert_array_equal(got.classes[order_ours], expected["labels"].numpy()[order_tv])
    np.testing.assert_allclose(got.scores[order_ours], expected["scores"].numpy()[order_tv], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.boxes[order_ours], expected["boxes"].numpy()[order_tv], rtol=0, atol=0.01)
    if kind == "mask":
        assert got.masks is not None and got.masks.shape == (len(got), height, width)
        theirs = expected["masks"][:, 0].numpy() > 0.5
        ious = [_mask_iou(got.masks[i], theirs[j]) for i, j in zip(order_ours, order_tv)]
        assert min(ious) > 0.99, ious
    if kind == "keypoint":
        assert got.keypoints is not None and got.keypoints.shape == (len(got), 17, 3)
        theirs = expected["keypoints"].numpy()[order_tv, :, :2]
        np.testing.assert_allclose(got.keypoints[order_ours, :, :2], theirs, rtol=0, atol=1.0)
        np.testing.assert_allclose(
            got.keypoints[order_ours, :, 2], expected["keypoints_scores"].numpy()[order_tv], rtol=0, atol=1e-3
        )
