#!/usr/bin/env python
"""Backbone benchmark: parameters, FLOPs at 1x3x224x224 and CPU images/s against a peer.

Examples:
    # parameters and FLOPs of every registered backbone (no timing), as a markdown table
    python tools/benchmark_backbones.py --no-speed
    # speed of some backbones against their peers: 5 rounds, each side in its own process
    python tools/benchmark_backbones.py --models resnet50,cspdarknet53,vovnet39_ese --rounds 5

Rows are the `ROWS` table: name -> `Row(build, peer, peer_label, seed_gflops)`. A family
adds its rows with `add_row(...)` (ported families: a ViT against timm's, say). Every
registered backbone without a row gets a default one (no peer).

- Parameters: all of the backbone's parameters, in millions.
- FLOPs: 2 x the multiply-adds of convolutions and matrix products (what
  torch.utils.flop_counter.FlopCounterMode counts; norms, activations and additions are
  not counted), for one 224x224 image, measured on the meta device (no compute).
- Speed: eval mode, no_grad, float32, `--batch-size` images at 224x224 on the CPU with
  `--threads` threads. Each round runs ours and the peer in separate fresh processes
  (the order alternates between rounds); each process reports the median of `--iters`
  timed forwards after `--warmup` untimed ones; the table gives the median over rounds
  and the ratio ours / peer in images/s (> 1: ours faster).
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
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pydetectron import backbones


@dataclass(frozen=True)
class Row:
    """One benchmarked backbone: how to build it, an optional peer, the seed table's GFLOPs."""

    build: Callable[[], nn.Module]
    peer: Callable[[], nn.Module] | None = None
    peer_label: str = ""
    seed_gflops: float | None = None


ROWS: dict[str, Row] = {}


def add_row(name: str, build: Callable[[], nn.Module], peer=None, peer_label: str = "", seed_gflops=None) -> None:
    """Add (or replace) the row `name`."""
    ROWS[name] = Row(build, peer, peer_label, seed_gflops)


# vision-toolbox README, FLOPS(G) at (1, 3, 224, 224).
SEED_GFLOPS = {
    "darknet19": 5.53, "darknet53": 14.31, "cspdarknet53": 9.44, "darknet_yolov5n": 0.33,
    "darknet_yolov5s": 1.23, "darknet_yolov5m": 3.70, "darknet_yolov5l": 8.31, "darknet_yolov5x": 15.73,
    "vovnet27_slim": 5.79, "vovnet39": 15.61, "vovnet57": 19.33, "vovnet19_slim_ese": 4.85,
    "vovnet19_ese": 9.70, "vovnet39_ese": 15.62, "vovnet57_ese": 19.35, "vovnet99_ese": 34.51,
    "resnet18": 3.64, "resnet34": 7.34, "resnet50": 8.22, "resnet101": 15.66, "resnet152": 23.11,
    "resnext50_32x4d": 8.51, "resnext101_32x8d": 32.95, "wide_resnet50_2": 22.85, "wide_resnet101_2": 45.59,
    "regnetx_400mf": 0.84, "regnetx_800mf": 1.62, "regnetx_1_6gf": 3.24, "regnetx_3_2gf": 6.40,
    "regnetx_8gf": 16.04, "regnetx_16gf": 31.98, "regnetx_32gf": 63.61, "regnety_400mf": 0.82,
    "regnety_800mf": 1.69, "regnety_1_6gf": 3.26, "regnety_3_2gf": 6.40, "regnety_8gf": 17.03,
    "regnety_16gf": 31.92, "regnety_32gf": 64.69, "mobilenet_v2": 0.63, "mobilenet_v3_large": 0.45,
    "mobilenet_v3_small": 0.12, "efficientnet_b0": 0.80, "efficientnet_b1": 1.18, "efficientnet_b2": 1.36,
    "efficientnet_b3": 1.98, "efficientnet_b4": 3.09, "efficientnet_b5": 4.82, "efficientnet_b6": 6.86,
    "efficientnet_b7": 10.53,
}  # fmt: skip

# timm models with the same design (not the same network: timm's Darknets use LeakyReLU,
# its VoVNets put eSE in the last block of a stage only and merge the stage-2 max pool).
TIMM_PEERS = {
    "darknet53": "darknet53",
    "cspdarknet53": "cspdarknet53",
    "vovnet39": "vovnet39a",
    "vovnet57": "vovnet57a",
    "vovnet19_slim_ese": "ese_vovnet19b_slim",
    "vovnet39_ese": "ese_vovnet39b",
    "vovnet57_ese": "ese_vovnet57b",
    "vovnet99_ese": "ese_vovnet99b",
}


class FeatureExtractorPeer(nn.Module):
    """torchvision's own feature extractor (FX graph) on the same torchvision model."""

    def __init__(self, name: str):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        from pydetectron.backbones.toolbox import TORCHVISION_BACKBONES

        ours = backbones.build_backbone(name)
        model = TORCHVISION_BACKBONES[name][1](weights=None)
        model.load_state_dict(ours.state_dict(), strict=False)
        self.extractor = create_feature_extractor(model, _torchvision_nodes(name, ours))

    def forward(self, x):
        return list(self.extractor(x).values())


def _torchvision_nodes(name: str, model) -> list[str]:
    """FX node names of our wrapper's five maps (same rules as the wrapper)."""
    if name.startswith(("resnet", "resnext", "wide_resnet")):
        return ["relu", "layer1", "layer2", "layer3", "layer4"]
    if name.startswith("regnet"):
        return ["stem"] + [f"trunk_output.block{i}" for i in range(1, 5)]
    from pydetectron.backbones.toolbox.torchvision_models import _units

    names = {id(module): name for name, module in model.named_modules()}
    units = list(_units(model.features))
    nodes = []
    for index, expands in model._taps.items():
        unit = units[index]
        attribute = "block" if hasattr(unit, "block") else "conv"
        nodes.append(f"{names[id(unit)]}.{attribute}.0" if expands else names[id(units[index - 1])])
    return nodes + [names[id(units[-1])]]


def _timm_peer(timm_name: str) -> Callable[[], nn.Module]:
    def build():
        import timm

        return timm.create_model(timm_name, pretrained=False, features_only=True)

    return build


def _default_rows() -> None:
    from pydetectron.backbones.toolbox import TORCHVISION_BACKBONES

    for name in backbones.list_backbones():
        if name in ROWS:
            continue
        peer, label = None, ""
        if name in TORCHVISION_BACKBONES:
            peer, label = (lambda n=name: FeatureExtractorPeer(n)), "torchvision create_feature_extractor"
        elif name in TIMM_PEERS:
            peer, label = _timm_peer(TIMM_PEERS[name]), f"timm {TIMM_PEERS[name]} (features_only)"
        add_row(name, lambda n=name: backbones.build_backbone(n), peer, label, SEED_GFLOPS.get(name))


def count_gflops(build: Callable[[], nn.Module]) -> tuple[float, float]:
    """(parameters in millions, GFLOPs at 1x3x224x224) without running any arithmetic."""
    try:
        with torch.device("meta"):
            model = build()
    except NotImplementedError:  # constructors that compute with tensors (RegNet's widths)
        model = build().to("meta")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, 3, 224, 224, device="meta"))
    return params, counter.get_total_flops() / 1e9


def time_forward(build: Callable[[], nn.Module], batch: int, warmup: int, iters: int, threads: int) -> float:
    """Median seconds of one eval forward of `batch` 224x224 images (this process)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(batch, 3, 224, 224)
    times = []
    with torch.no_grad():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _worker(args) -> None:
    row = ROWS[args.worker]
    build = row.build if args.side == "ours" else row.peer
    seconds = time_forward(build, args.batch_size, args.warmup, args.iters, args.threads)
    print(json.dumps({"seconds": seconds}))


def _measure_in_subprocess(name: str, side: str, args) -> float:
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", name, "--side", side,
        "--batch-size", str(args.batch_size), "--warmup", str(args.warmup), "--iters", str(args.iters),
        "--threads", str(args.threads),
    ]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def benchmark(names: list[str], args) -> list[dict]:
    results = []
    for name in names:
        row = ROWS[name]
        params, gflops = count_gflops(row.build)
        result = {"name": name, "params_m": params, "gflops": gflops, "seed_gflops": row.seed_gflops}
        if row.peer is not None:
            result["peer"] = row.peer_label
            result["peer_params_m"], result["peer_gflops"] = count_gflops(row.peer)
        if not args.no_speed:
            sides = ["ours"] + (["peer"] if row.peer is not None else [])
            samples = {side: [] for side in sides}
            for r in range(args.rounds):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    samples[side].append(_measure_in_subprocess(name, side, args))
            for side in sides:
                result[f"{side}_ips"] = args.batch_size / statistics.median(samples[side])
            if row.peer is not None:
                result["ratio"] = result["ours_ips"] / result["peer_ips"]
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    return results


def markdown(results: list[dict], speed: bool) -> str:
    header = "| backbone | params (M) | GFLOPs | seed GFLOPs |"
    rule = "|---|---|---|---|"
    if speed:
        header += " images/s | peer | peer params (M) / GFLOPs | peer images/s | ratio |"
        rule += "---|---|---|---|---|"
    lines = [header, rule]
    for r in results:
        seed = f"{r['seed_gflops']:.2f}" if r["seed_gflops"] is not None else "-"
        line = f"| {r['name']} | {r['params_m']:.2f} | {r['gflops']:.2f} | {seed} |"
        if speed:
            peer = r.get("peer", "-")
            size = f"{r['peer_params_m']:.2f} / {r['peer_gflops']:.2f}" if "peer_params_m" in r else "-"
            peer_ips = f"{r['peer_ips']:.1f}" if "peer_ips" in r else "-"
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            line += f" {r['ours_ips']:.1f} | {peer} | {size} | {peer_ips} | {ratio} |"
        lines.append(line)
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", help="comma-separated backbone names (default: every row)")
    p.add_argument("--no-speed", action="store_true", help="parameters and FLOPs only")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="processes per side (alternating order)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--side", choices=["ours", "peer"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    _default_rows()
    if args.worker:
        _worker(args)
        return 0
    names = args.models.split(",") if args.models else list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown backbones {unknown}; known: {', '.join(ROWS)}")
    results = benchmark(names, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(markdown(results, not args.no_speed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
