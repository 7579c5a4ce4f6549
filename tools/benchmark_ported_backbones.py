#!/usr/bin/env python
"""Ported backbones beside timm's same models: parameters, FLOPs at 1x3x224x224, CPU images/s.

    python tools/benchmark_ported_backbones.py [--models vit_b16,swin_t] [--batch 4] [--iters 5] [--rounds 3]

Both sides run the whole backbone up to the pre-logits features (ours `pooled_features`,
timm `forward_head(forward_features(x), pre_logits=True)`) on random weights in float32,
eval mode, no autograd. Speed: each (model, side) is timed in a fresh process (warm-up, then
`--iters` timed batches, their median), sides alternating within a round and the order
flipping between rounds; the table gives the median over rounds and ours / timm. FLOPs are
torch.utils.flop_counter's (2 per multiply-add) with scaled-dot-product attention on its
math kernel so the attention matmuls are counted. timm is a test / benchmark dependency only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

# ours -> timm's same architecture, at 224 (each family's representative sizes)
MODELS = {
    "vit_s16": "vit_small_patch16_224",
    "vit_b16": "vit_base_patch16_224",
    "deit_s16_distilled": "deit_small_distilled_patch16_224",
    "deit3_s16": "deit3_small_patch16_224",
    "siglip_b16": "vit_base_patch16_siglip_224",
    "mixer_b16": "mixer_b16_224",
    "cait_s24": "cait_s24_224",
    "swin_t": "swin_tiny_patch4_window7_224",
    "convnext_t": "convnext_tiny",
    "convnextv2_t": "convnextv2_tiny",
}


def build(side: str, name: str) -> tuple[torch.nn.Module, Callable]:
    """The model and its pre-logits forward function."""
    torch.manual_seed(0)
    if side == "ours":
        from pydetectron import backbones

        model = backbones.build_backbone(name).eval()
        return model, model.pooled_features
    import timm

    model = timm.create_model(MODELS[name], pretrained=False, num_classes=0).eval()
    return model, lambda x: model.forward_head(model.forward_features(x), pre_logits=True)


def count_flops(forward, x: torch.Tensor) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        forward(x)
    return counter.get_total_flops()


def worker(side: str, name: str, batch: int, iters: int, threads: int) -> None:
    """Time one side in this process and print {"images_per_s": ...} as JSON."""
    torch.set_num_threads(threads)
    _, forward = build(side, name)
    x = torch.randn(batch, 3, 224, 224)
    times = []
    with torch.no_grad():
        for i in range(iters + 2):
            start = time.perf_counter()
            forward(x)
            if i >= 2:  # two warm-up batches
                times.append(time.perf_counter() - start)
    print(json.dumps({"images_per_s": batch / statistics.median(times)}))


def time_side(side: str, name: str, args) -> float:
    command = [sys.executable, os.path.abspath(__file__), "--worker", side, name]
    command += ["--batch", str(args.batch), "--iters", str(args.iters), "--threads", str(args.threads)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names (of: %(default)s)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5, help="timed batches per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per side, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each timing process")
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.batch, args.iters, args.threads)
        return
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    print("| ours | timm | params (M) | GFLOPs @224 | ours img/s | timm img/s | ours / timm |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        stats = {}
        x = torch.randn(1, 3, 224, 224)
        for side in ("ours", "timm"):
            model, forward = build(side, name)
            stats[side] = (sum(p.numel() for p in model.parameters()), count_flops(forward, x))
            del model, forward
        if stats["ours"] != stats["timm"]:
            raise SystemExit(f"{name}: params/FLOPs differ from timm's: {stats}")
        speeds = {"ours": [], "timm": []}
        for round_index in range(args.rounds):
            order = ("ours", "timm") if round_index % 2 == 0 else ("timm", "ours")
            for side in order:
                speeds[side].append(time_side(side, name, args))
        ours, theirs = statistics.median(speeds["ours"]), statistics.median(speeds["timm"])
        params, flops = stats["ours"]
        print(
            f"| {name} | {MODELS[name]} | {params / 1e6:.1f} | {flops / 1e9:.2f} | {ours:.1f} | {theirs:.1f} | "
            f"{ours / theirs:.2f} |",
            flush=True,
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
