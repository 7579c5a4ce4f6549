"""Benchmark pydetectron's RetinaNet against torchvision's retinanet_resnet50_fpn on the same weights.

Ours runs from configs/torchvision/retinanet_resnet50_fpn.yaml with the torchvision model's
state dict. Two tasks per side, each in its own process, sides alternating over --rounds:
  infer: one uint8 image through `Predictor` (ours) / a [0, 1] RGB tensor through the
         model (torchvision), preprocessing and post-processing included;
  train: forward + backward of a 2-image batch (both sides FrozenBatchNorm, stem and
         layer1 frozen as the preset's FREEZE_AT 2), on the same tensors and targets.
The table shows the median over rounds of each process's median time, and
ratio = torchvision time / our time (> 1: ours is faster). `--clock cpu` times with the
process's CPU time instead of the wall clock: on a shared machine it leaves out the time spent
waiting for a core (with one thread, the work itself).

    python tools/benchmark_retinanet.py --threads 1 --rounds 3 --iters 5
    python tools/benchmark_retinanet.py --threads 1 --rounds 3 --iters 3 --clock cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "torchvision" / "retinanet_resnet50_fpn.yaml"
TASKS = ("infer", "train")
SIDES = ("ours", "torchvision")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def torchvision_model(min_size: int, max_size: int) -> nn.Module:
    """A seeded random retinanet_resnet50_fpn whose BatchNorms are frozen, stem and layer1 fixed."""
    from torchvision.models import detection
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    model = detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=min_size, max_size=max_size)

    def freeze(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                frozen.weight.copy_(child.weight.detach())
                frozen.bias.copy_(child.bias.detach())
                setattr(module, name, frozen)
            else:
                freeze(child)

    with torch.no_grad():
        freeze(model)
        model.head.classification_head.cls_logits.weight.normal_(0, 0.05)
    body = model.backbone.body
    for module in (body.conv1, body.layer1):
        for p in module.parameters():
            p.requires_grad_(False)
    return model


def batch(height: int, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, height, width, generator=g), torch.rand(3, width, height, generator=g)]
    boxes = [
        torch.tensor([[10.0, 20, 200, 180], [150, 60, 300, 240], [30, 40, 60, 90]]),
        torch.tensor([[30.0, 40, 150, 300]]),
    ]
    labels = [torch.tensor([1, 17, 3]), torch.tensor([62])]
    return images, [{"boxes": b, "labels": c} for b, c in zip(boxes, labels)]


def run_side(side: str, task: str, size: tuple[int, int], iters: int, weights: str, clock: str = "wall") -> list[float]:
    """Times of `iters` calls (after one warm-up) of one side and task, in this process."""
    from pydetectron import Predictor
    from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
    from pydetectron.structures.ground_truth import GroundTruth

    min_size, max_size = size
    tv = torchvision_model(min_size, max_size)
    tv.load_state_dict(torch.load(weights, weights_only=True))
    if side == "ours":
        cfg = get_cfg()
        merge_cfg_from_file(PRESET, target=cfg)
        merge_cfg_from_list(["TEST.SCALE", str(min_size), "TEST.MAX_SIZE", str(max_size)], target=cfg)
        assert_and_infer_cfg(target=cfg)
        predictor = Predictor(cfg, weights, device="cpu")
        model = predictor.model
    images, targets = batch(min_size, int(min_size * 1.5))
    if task == "infer":
        image = (images[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).astype(np.uint8)
        if side == "ours":

            def step():
                predictor(image)
        else:
            tv.eval()

            def step():
                with torch.no_grad():
                    tv([images[0]])
    else:
        tv.train()
        prepared, resized = tv.transform(images, targets)
        if side == "ours":
            model.train()
            im_info = torch.tensor([[h, w, 1.0] for h, w in prepared.image_sizes])
            gt = [GroundTruth(t["boxes"], t["labels"]) for t in resized]

            def step():
                losses = model(prepared.tensors, im_info, gt)
                (losses["loss_retnet_cls"] + losses["loss_retnet_bbox"]).backward()
        else:

            def step():
                features = list(tv.backbone(prepared.tensors).values())
                outputs = tv.head(features)
                losses = tv.compute_loss(resized, outputs, tv.anchor_generator(prepared, features))
                sum(losses.values()).backward()

    now = CLOCKS[clock]
    step()
    times = []
    for _ in range(iters):
        start = now()
        step()
        times.append(now() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per side and task")
    parser.add_argument("--iters", type=int, default=5, help="timed calls per process")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 512), metavar=("MIN", "MAX"))
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall clock or process CPU time")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "TASK", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        side, task, weights = args.worker
        print(json.dumps(run_side(side, task, tuple(args.size), args.iters, weights, args.clock)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "retinanet.pth")
        torch.save(torchvision_model(*args.size).state_dict(), weights)
        medians: dict[tuple[str, str], list[float]] = {}
        for task in args.tasks:
            for round_index in range(args.rounds):
                order = SIDES if round_index % 2 == 0 else SIDES[::-1]
                for side in order:
                    command = [
                        sys.executable,
                        __file__,
                        "--worker",
                        side,
                        task,
                        weights,
                        "--threads",
                        str(args.threads),
                        "--iters",
                        str(args.iters),
                        "--size",
                        *map(str, args.size),
                        "--clock",
                        args.clock,
                    ]
                    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                    times = json.loads(out.strip().splitlines()[-1])
                    medians.setdefault((task, side), []).append(statistics.median(times))
    print(
        f"size {args.size[0]}/{args.size[1]}, threads {args.threads}, {args.rounds} rounds x {args.iters} calls, "
        f"{args.clock} clock"
    )
    print("| task | ours (ms) | torchvision (ms) | ratio |")
    print("|---|---|---|---|")
    for task in args.tasks:
        ours = statistics.median(medians[(task, "ours")]) * 1000
        theirs = statistics.median(medians[(task, "torchvision")]) * 1000
        print(f"| {task} | {ours:.0f} | {theirs:.0f} | {theirs / ours:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
