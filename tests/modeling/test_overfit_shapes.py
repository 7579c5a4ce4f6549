"""Training signal end to end: losses fall when a model overfits one shapes image."""

import sys
from pathlib import Path

import pytest
import torch

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.data import ensure_shapes_dataset
from pydetectron.data.json_dataset import load_coco_roidb
from pydetectron.data.minibatch import RoidbDataset, collate_minibatch
from pydetectron.modeling import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread, tiny_cfg  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "e2e_faster_rcnn_R-50-FPN_shapes.yaml"


def test_losses_fall_when_overfitting_one_image(tmp_path):
    torch.manual_seed(0)
    folder = ensure_shapes_dataset(tmp_path, "train", num_images=2, seed=3)
    cfg = get_cfg()
    merge_cfg_from_file(CONFIG, target=cfg)
    merge_cfg_from_list(["TRAIN.SCALES", "(128,)", "TRAIN.MAX_SIZE", "192"], target=cfg)
    assert_and_infer_cfg(target=cfg)
    roidb = load_coco_roidb(str(folder / "annotations.json"), str(folder / "images"))
    dataset = RoidbDataset(roidb, scales=(128,), max_size=192, pixel_means=cfg.PIXEL_MEANS)
    batch = collate_minibatch([dataset[0]], size_divisibility=32)
    assert len(batch["targets"][0].boxes) > 0
    model = build_model(cfg).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9)
    totals = []
    for _ in range(30):
        losses = model(batch["data"], batch["im_info"], batch["targets"])
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.SOLVER.CLIP_GRAD_NORM)
        optimizer.step()
        totals.append(total.item())
    assert all(torch.isfinite(torch.tensor(totals)))
    assert sum(totals[-5:]) / 5 < 0.5 * sum(totals[:3]) / 3, totals


@pytest.mark.parametrize("variant", ["mask", "keypoint"])
def test_mask_and_keypoint_losses_fall_when_overfitting_one_image(tmp_path, variant):
    """The tiny GN model of the tool tests with a mask or keypoint branch, 60 steps on one image."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from test_test_net_masks_keypoints import KEYPOINTS, MASK

    torch.manual_seed(0)
    options = MASK if variant == "mask" else KEYPOINTS
    keypoints = variant == "keypoint"
    folder = ensure_shapes_dataset(tmp_path / "shapes", "train", keypoints=keypoints, num_images=2, seed=3)
    cfg = tiny_cfg(None, options)
    roidb = load_coco_roidb(str(folder / "annotations.json"), str(folder / "images"))
    mask_format = None if keypoints else "polygon"
    dataset = RoidbDataset(
        roidb, scales=(128,), max_size=192, pixel_means=cfg.PIXEL_MEANS, mask_format=mask_format, keypoints=keypoints
    )
    batch = collate_minibatch([dataset[0]], size_divisibility=32)
    model = build_model(cfg).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    key = "loss_mask" if variant == "mask" else "loss_kps"
    history = []
    with one_torch_thread():
        for _ in range(60):
            losses = model(batch["data"], batch["im_info"], batch["targets"])
            total = sum(v for k, v in losses.items() if k.startswith("loss"))
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            history.append(float(losses[key]))
    assert sum(history[-5:]) / 5 < 0.5 * sum(history[:3]) / 3, history
