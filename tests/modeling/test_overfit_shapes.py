"""Training signal end to end: losses fall when a model overfits one shapes image."""

from pathlib import Path

import torch

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.data import ensure_shapes_dataset
from pydetectron.data.json_dataset import load_coco_roidb
from pydetectron.data.minibatch import RoidbDataset, collate_minibatch
from pydetectron.modeling import build_model

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
