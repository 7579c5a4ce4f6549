"""Shared helpers of the inference / evaluation / tool tests: COCO fixtures and a tiny model.

Other test folders import this file by path (`sys.path` gets this folder).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "configs" / "baselines" / "e2e_faster_rcnn_R-50-FPN_1x.yaml"

# A thin R-50-FPN with GroupNorm: a CPU train step on 128 px shapes images takes about a second.
TINY_MODEL = [
    "MODEL.NUM_CLASSES", "5",
    "RESNETS.TRANS_FUNC", "bottleneck_gn_transformation",
    "RESNETS.STEM_FUNC", "basic_gn_stem",
    "RESNETS.SHORTCUT_FUNC", "basic_gn_shortcut",
    "RESNETS.WIDTH_PER_GROUP", "8",
    "GROUP_NORM.NUM_GROUPS", "8",
    "TRAIN.FREEZE_AT", "0",
    "FPN.DIM", "64",
    "FAST_RCNN.MLP_HEAD_DIM", "128",
    "TRAIN.SCALES", "(128,)",
    "TRAIN.MAX_SIZE", "192",
    "TRAIN.BATCH_SIZE_PER_IM", "128",
    "TRAIN.RPN_BATCH_SIZE_PER_IM", "128",
    "TRAIN.RPN_PRE_NMS_TOP_N", "500",
    "TRAIN.RPN_POST_NMS_TOP_N", "200",
    "TRAIN.IMS_PER_BATCH", "2",
    "TEST.SCALE", "128",
    "TEST.MAX_SIZE", "192",
    "TEST.RPN_PRE_NMS_TOP_N", "500",
    "TEST.RPN_POST_NMS_TOP_N", "100",
    "TRAIN.DATASETS", "('shapes_train',)",
    "TEST.DATASETS", "('shapes_val',)",
    "DATA_LOADER.NUM_THREADS", "0",
]  # fmt: skip


@contextlib.contextmanager
def one_torch_thread():
    """Run with one intra-op thread: on a busy 2-core machine the small convs of the tiny
    model are many times faster single-threaded than with threads fighting for cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def tiny_cfg(data_dir: str | Path | None = None, extra: list[str] | None = None, freeze: bool = True):
    """A config tree (not the global one) of the tiny shapes model."""
    cfg = get_cfg()
    merge_cfg_from_file(BASE_CONFIG, target=cfg)
    options = list(TINY_MODEL)
    if data_dir is not None:
        options += ["DATA_DIR", str(data_dir)]
    merge_cfg_from_list(options + list(extra or []), target=cfg)
    assert_and_infer_cfg(make_immutable=freeze, target=cfg)
    return cfg


def save_checkpoint(path: Path, model: torch.nn.Module, cfg) -> Path:
    """Our checkpoint format, reduced to what testing reads."""
    torch.save({"model": model.state_dict(), "cfg": cfg.dump()}, path)
    return path


def short_train(cfg, steps: int, lr: float = 0.02, seed: int = 0) -> torch.nn.Module:
    """A minimal SGD loop (linear warm-up, gradient clipping) over `build_train_loader`."""
    from pydetectron.data import build_train_loader
    from pydetectron.modeling.model_builder import build_model

    torch.manual_seed(seed)
    model = build_model(cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    loader = build_train_loader(cfg, num_workers=0)
    for step, batch in zip(range(steps), loader):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 20)
        losses = model(batch["data"], batch["im_info"], batch["targets"])
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
    return model.eval()


# ---- small COCO ground truth ------------------------------------------------------------------
CATEGORIES = [
    {"id": 3, "name": "cat"},
    {"id": 9, "name": "dog"},
    {"id": 1, "name": "person", "keypoints": ["a", "b", "c", "d"], "skeleton": [[1, 2], [2, 3], [3, 4]]},
]


def _square(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def _annotation(ann_id, image_id, category_id, x, y, w, h, keypoints=None) -> dict:
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x, y, w, h],
        "area": float(w * h),
        "iscrowd": 0,
        "segmentation": [_square(x, y, w, h)],
    }
    if keypoints is not None:
        ann["keypoints"] = keypoints
        ann["num_keypoints"] = sum(1 for v in keypoints[2::3] if v > 0)
    return ann


def small_coco() -> dict:
    """Three images, three categories (json ids 3, 9, 1), boxes of every COCO area range."""
    images = [
        {"id": 11, "file_name": "a.png", "width": 320, "height": 240},
        {"id": 12, "file_name": "b.png", "width": 300, "height": 400},
        {"id": 13, "file_name": "c.png", "width": 200, "height": 200},
    ]
    kp1 = [40.0, 50.0, 2, 60.0, 55.0, 2, 70.0, 90.0, 1, 50.0, 100.0, 2]
    kp2 = [150.0, 200.0, 2, 170.0, 210.0, 2, 0.0, 0.0, 0, 160.0, 260.0, 2]
    anns = [
        _annotation(1, 11, 3, 10.5, 20.0, 20.0, 14.0),  # small
        _annotation(2, 11, 9, 100.0, 60.0, 60.0, 50.0),  # medium
        _annotation(3, 11, 1, 30.0, 40.0, 60.0, 80.0, kp1),
        _annotation(4, 12, 3, 20.0, 30.0, 200.0, 150.0),  # large
        _annotation(5, 12, 1, 140.0, 190.0, 50.0, 90.0, kp2),
        _annotation(6, 13, 9, 50.0, 50.0, 8.0, 9.0),
    ]
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def write_images(folder: Path, coco: dict, seed: int = 0) -> None:
    """Random PNGs with the json's names and sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for image in coco["images"]:
        pixels = rng.integers(0, 256, (image["height"], image["width"], 3), dtype=np.uint8)
        cv2.imwrite(str(folder / image["file_name"]), pixels)


# ---- PDF files ------------------------------------------------------------------------------
def parse_pdf(data: bytes) -> dict:
    """Objects by number, checked against the xref table; pages; embedded JPEG streams."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    xref_at = int(re.search(rb"startxref\s+(\d+)\s+%%EOF", data).group(1))
    assert data[xref_at : xref_at + 4] == b"xref"
    header = re.match(rb"xref\s+0 (\d+)\s+", data[xref_at:])
    count = int(header.group(1))
    rows = data[xref_at + header.end() :].split(b"\n")[:count]
    objects = {}
    for number, row in enumerate(rows[1:], start=1):
        offset = int(row[:10])
        assert data[offset:].startswith(f"{number} 0 obj".encode()), number
        end = data.index(b"endobj", offset)
        objects[number] = data[offset:end]
    pages = [n for n, body in objects.items() if re.search(rb"/Type\s*/Page(?![s\w])", body)]
    images = []
    for body in objects.values():
        if b"/DCTDecode" in body:
            length = int(re.search(rb"/Length (\d+)", body).group(1))
            start = body.index(b"stream\n") + len(b"stream\n")
            images.append(body[start : start + length])
    return {"objects": objects, "pages": pages, "images": images}
