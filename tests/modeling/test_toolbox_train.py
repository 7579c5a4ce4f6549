"""Each backbone family as a `toolbox.` body trains a few Mask R-CNN steps on a shapes image:
losses stay finite, gradients reach the backbone's first layer and every body parameter, and
the total loss falls (the mean of the last 3 steps below that of the first 3)."""

import sys
from pathlib import Path

import pytest
import torch

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.data import ensure_shapes_dataset
from pydetectron.data.json_dataset import load_coco_roidb
from pydetectron.data.minibatch import RoidbDataset, collate_minibatch
from pydetectron.engine.optimizer import SolverSettings, build_optimizer
from pydetectron.modeling import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toolbox" / "shapes_mask_rcnn_vovnet19_slim_ese_fpn.yaml"
SMALL = ["TRAIN.SCALES", "(96,)", "TRAIN.MAX_SIZE", "128", "TRAIN.BATCH_SIZE_PER_IM", "32",
         "TRAIN.RPN_BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "200", "TRAIN.RPN_POST_NMS_TOP_N", "50",
         "TOOLBOX.NECK_CHANNELS", "32", "FAST_RCNN.MLP_HEAD_DIM", "64", "MRCNN.DIM_REDUCED", "32"]  # fmt: skip
TINY_SWIN = "{'embed_dim': 32, 'depths': (1, 1, 1, 1), 'num_heads': (1, 2, 4, 8)}"
# body, BACKBONE_KWARGS, optimizer (SGD for the toolbox families, AdamW for the ported ones), LR
FAMILIES = {
    "darknet": ("toolbox.darknet_yolov5n+pan", "", "SGD", 0.01),
    "vovnet": ("toolbox.vovnet19_slim_ese+fpn", "", "SGD", 0.01),
    "torchvision": ("toolbox.mobilenet_v3_small+bifpn", "", "SGD", 0.01),
    "swin": ("toolbox.swin_t+fpn", TINY_SWIN, "AdamW", 3e-4),
    "convnext": ("toolbox.convnextv2_a+fpn", "", "AdamW", 3e-4),
    "vit": ("toolbox.vit_ti16+simple_fpn", "{'depth': 4}", "AdamW", 3e-4),
}


STEPS = 10


@pytest.fixture(scope="module")
def roidb(tmp_path_factory):
    folder = ensure_shapes_dataset(tmp_path_factory.mktemp("shapes"), "train", num_images=2, seed=3)
    return load_coco_roidb(str(folder / "annotations.json"), str(folder / "images"))


def family_cfg(body: str, kwargs: str, optimizer: str, lr: float):
    cfg = get_cfg()
    merge_cfg_from_file(CONFIG, target=cfg)
    extra = ["MODEL.CONV_BODY", body, "TOOLBOX.BACKBONE_KWARGS", kwargs, "SOLVER.TYPE", optimizer,
             "SOLVER.BASE_LR", str(lr), "TOOLBOX.VIT_WINDOW_SIZE", "4", "TOOLBOX.NECK_NORM", ""]  # fmt: skip
    if optimizer == "AdamW":
        extra += ["SOLVER.WEIGHT_DECAY", "0.05", "SOLVER.LAYER_DECAY", "0.9"]
    merge_cfg_from_list(SMALL + extra, target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_mask_rcnn_steps_on_shapes(family, roidb):
    torch.manual_seed(0)
    cfg = family_cfg(*FAMILIES[family])
    dataset = RoidbDataset(
        roidb, scales=(96,), max_size=128, pixel_means=cfg.PIXEL_MEANS, pixel_stds=cfg.PIXEL_STDS,
        input_format=cfg.INPUT_FORMAT, mask_format="polygon",
    )  # fmt: skip
    batch = collate_minibatch([dataset[0]], size_divisibility=32)
    model = build_model(cfg).train()
    first_layer = next(p for p in model.body.backbone.net.parameters() if p.ndim == 4)
    optimizer = build_optimizer(model, SolverSettings.from_cfg(cfg), cfg.SOLVER.BASE_LR)
    totals = []
    with one_torch_thread():
        for step in range(STEPS):
            losses = model(batch["data"], batch["im_info"], batch["targets"])
            assert {"loss_mask", "loss_cls", "loss_rpn_cls"} <= set(losses)
            total = sum(v for k, v in losses.items() if k.startswith("loss"))
            assert torch.isfinite(total), (step, losses)
            optimizer.zero_grad()
            total.backward()
            if step == 0:
                assert first_layer.grad is not None and first_layer.grad.abs().sum() > 0
                unused = [n for n, p in model.body.named_parameters() if p.requires_grad and p.grad is None]
                assert not unused, unused  # DistributedDataParallel needs every body parameter used
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            totals.append(total.item())
    assert sum(totals[-3:]) / 3 < sum(totals[:3]) / 3, totals
