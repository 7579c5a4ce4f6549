#!/usr/bin/env python
"""Benchmark the data pipeline: roidb build time/memory and training-loader throughput.

1. Writes a synthetic COCO json (default 100k images / 800k annotations with polygons,
   1% crowd RLE, some boxes outside their image, 80 categories with COCO's id gaps).
2. In fresh subprocesses (so peak RSS is per task), times and measures the peak memory of
   `pycocotools.COCO(json)` alone, our roidb build from the json (no cache), the training
   roidb on top of it (flip + filter + aspect-grouped sampler), and our roidb from cache.
3. Measures images/s of the training loader on the shapes dataset, next to a bare
   `cv2.imread + cv2.resize` loop over the same images (the peer: decode + resize only).

Usage:
    python tools/benchmark_data.py                       # full run, prints a markdown report
    python tools/benchmark_data.py --images 10000 --annotations 80000 --loader-batches 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pydetectron.engine.cli import ToolArgumentParser

COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


# ---- synthetic COCO json ------------------------------------------------------------------
def _fmt(values) -> str:
    return ",".join(f"{v:.2f}" for v in values)


def write_synthetic_coco(path: Path, num_images: int, num_anns: int, seed: int = 0) -> None:
    """Stream a COCO-like json to `path` without building it in memory."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(320, 641, num_images)
    heights = rng.integers(240, 481, num_images)
    with open(path, "w") as f:
        f.write('{"info": {"description": "synthetic"}, "licenses": [], "images": [')
        f.write(
            ",".join(
                f'{{"id": {i + 1}, "file_name": "{i + 1:012d}.jpg", '
                f'"width": {int(widths[i])}, "height": {int(heights[i])}}}'
                for i in range(num_images)
            )
        )
        f.write('], "annotations": [')
        chunk = 50_000
        for start in range(0, num_anns, chunk):
            n = min(chunk, num_anns - start)
            image = rng.integers(0, num_images, n)
            w_img, h_img = widths[image], heights[image]
            bw = rng.uniform(2, 0.6 * w_img)
            bh = rng.uniform(2, 0.6 * h_img)
            x = rng.uniform(-0.05, 1.0, n) * (w_img - bw)  # a few start outside the image
            y = rng.uniform(-0.05, 1.0, n) * (h_img - bh)
            crowd = rng.random(n) < 0.01
            npts = rng.integers(3, 21, n)
            cats = rng.choice(COCO_CATEGORY_IDS, n)
            parts = []
            for j in range(n):
                if crowd[j]:
                    total = int(w_img[j] * h_img[j])
                    a, b = int(total * 0.3), int(total * 0.01) + 1
                    seg = (
                        f'{{"counts": [{a}, {b}, 40, {b}, {total - a - 2 * b - 40}], '
                        f'"size": [{int(h_img[j])}, {int(w_img[j])}]}}'
                    )
                else:
                    t = np.sort(rng.uniform(0, 2 * np.pi, npts[j]))
                    px = x[j] + bw[j] * (0.5 + 0.5 * np.cos(t))
                    py = y[j] + bh[j] * (0.5 + 0.5 * np.sin(t))
                    seg = "[[" + _fmt(np.stack([px, py], 1).ravel()) + "]]"
                parts.append(
                    f'{{"id": {start + j + 1}, "image_id": {int(image[j]) + 1}, '
                    f'"category_id": {int(cats[j])}, "iscrowd": {int(crowd[j])}, '
                    f'"area": {bw[j] * bh[j] * 0.7:.2f}, '
                    f'"bbox": [{x[j]:.2f}, {y[j]:.2f}, {bw[j]:.2f}, {bh[j]:.2f}], '
                    f'"segmentation": {seg}}}'
                )
            if start:
                f.write(",")
            f.write(",".join(parts))
        cats = [{"id": c, "name": f"class_{c}", "supercategory": "x"} for c in COCO_CATEGORY_IDS]
        f.write('], "categories": ' + json.dumps(cats) + "}")


# ---- children: one measured task per fresh process ------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_main(task: str, json_file: str, cache_dir: str) -> dict:
    """Run one task; returns seconds and peak RSS (MB) of this process."""
    from pycocotools.coco import COCO  # imports happen before the clock starts

    from pydetectron.data import GroupedBatchSampler, filter_for_training, load_coco_roidb

    baseline = _peak_rss_mb()
    start = time.perf_counter()
    extra = {}
    if task == "pycocotools":
        coco = COCO(json_file)
        extra["annotations"] = len(coco.anns)
    elif task == "json":
        from pydetectron.data.json_dataset import _gc_paused, read_json

        with _gc_paused():
            extra["annotations"] = len(read_json(json_file)["annotations"])
    elif task in ("roidb", "roidb_cached"):
        roidb = load_coco_roidb(
            json_file, "/nonexistent", cache_dir=cache_dir if task == "roidb_cached" else None
        )
        extra["annotations"] = int(roidb.tables.num_annotations)
        built = time.perf_counter()
        extra["load_s"] = built - start
        train = filter_for_training(roidb.with_flipped())
        sampler = GroupedBatchSampler(train.aspect_ratios, 2, seed=0)
        sampler.epoch_batches(0)
        extra["training_roidb_s"] = time.perf_counter() - built
        extra["training_entries"] = len(train)
        probe = time.perf_counter()
        for i in range(0, len(train), max(1, len(train) // 2000)):
            train.entry(i)
        extra["entry_ms"] = (time.perf_counter() - probe) * 1000 / 2000
    elif task == "write_cache":
        load_coco_roidb(json_file, "/nonexistent", cache_dir=cache_dir)
    else:
        raise ValueError(f"unknown task {task}")
    return {
        "task": task,
        "seconds": extra.pop("load_s", time.perf_counter() - start),
        "peak_rss_mb": _peak_rss_mb(),
        "import_rss_mb": baseline,
        **extra,
    }


def run_child(task: str, json_file: Path, cache_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", task, str(json_file), str(cache_dir)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- loader throughput ---------------------------------------------------------------------
def loader_throughput(data_dir: Path, batches: int, workers: list[int]) -> list[dict]:
    """Images/s of build_train_loader on shapes_train, and of a bare decode+resize loop."""
    import cv2

    from pydetectron.config import get_cfg
    from pydetectron.data import build_train_loader, compute_scale

    results = []
    for scale, max_size, fpn, masks in ((800, 1333, True, True), (320, 512, True, True)):
        cfg = get_cfg()
        cfg.DATA_DIR = str(data_dir)
        cfg.TRAIN.DATASETS = ("shapes_train",)
        cfg.TRAIN.SCALES = (scale,)
        cfg.TRAIN.MAX_SIZE = max_size
        cfg.TRAIN.IMS_PER_BATCH = 2
        cfg.FPN.FPN_ON = fpn
        cfg.MODEL.MASK_ON = masks
        for nw in workers:
            loader = build_train_loader(cfg, num_workers=nw)
            iterator = iter(loader)
            for _ in range(min(5, batches)):  # warm up (worker start, caches)
                next(iterator)
            start = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            seconds = time.perf_counter() - start
            del iterator
            results.append(
                {
                    "what": f"train loader, SCALES=({scale},), MAX_SIZE={max_size}, masks, "
                    f"{nw} workers",
                    "images_per_s": batches * 2 / seconds,
                }
            )
        roidb = loader.roidb
        count = min(len(roidb), batches * 2)
        start = time.perf_counter()
        for i in range(count):
            im = cv2.imread(roidb.image_path(i))
            s = compute_scale(im.shape[0], im.shape[1], scale, max_size)
            cv2.resize(im.astype(np.float32), None, None, fx=s, fy=s)
        seconds = time.perf_counter() - start
        results.append(
            {
                "what": f"peer: cv2.imread + float resize only, scale {scale}, 1 process",
                "images_per_s": count / seconds,
            }
        )
    return results


def main(argv=None) -> int:
    parser = ToolArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=800_000)
    parser.add_argument("--loader-batches", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeat", type=int, default=3, help="roidb runs per task (best kept)")
    parser.add_argument("--workdir", default=None, help="temporary files (default: a temp dir)")
    parser.add_argument("--skip-roidb", action="store_true")
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_main(*args.child)))
        return 0

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        lines = [f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}", ""]
        if not args.skip_roidb:
            json_file = tmp / "synthetic.json"
            start = time.perf_counter()
            write_synthetic_coco(json_file, args.images, args.annotations)
            size_mb = json_file.stat().st_size / 2**20
            lines.append(
                f"synthetic json: {args.images} images, {args.annotations} annotations, "
                f"{size_mb:.0f} MB (written in {time.perf_counter() - start:.0f} s)"
            )
            cache = tmp / "cache"
            run_child("write_cache", json_file, cache)
            runs = {task: [] for task in ("pycocotools", "json", "roidb", "roidb_cached")}
            for _ in range(args.repeat):  # interleaved, best of N: the machine may be shared
                for task, results in runs.items():
                    results.append(run_child(task, json_file, cache))
            coco, raw, ours, cached = (
                min(results, key=lambda r: r["seconds"]) for results in runs.values()
            )
            lines += [
                "",
                f"best of {args.repeat} runs, each task in a fresh process:",
                "",
                "| task | time (s) | peak RSS (MB) | time vs pycocotools |",
                "|---|---|---|---|",
                f"| pycocotools `COCO(json)` alone | {coco['seconds']:.1f} | "
                f"{coco['peak_rss_mb']:.0f} | 1.00 |",
                f"| `json.load` alone (GC paused, the floor of any json build) | "
                f"{raw['seconds']:.1f} | {raw['peak_rss_mb']:.0f} | "
                f"{raw['seconds'] / coco['seconds']:.2f} |",
                f"| our roidb from the json (load + parse + clean, no cache) | {ours['seconds']:.1f} | "
                f"{ours['peak_rss_mb']:.0f} | {ours['seconds'] / coco['seconds']:.2f} |",
                f"| our roidb from the cache | {cached['seconds']:.2f} | "
                f"{cached['peak_rss_mb']:.0f} | {cached['seconds'] / coco['seconds']:.3f} |",
                "",
                f"training roidb on top (flip + filter + sampler epoch, "
                f"{ours['training_entries']} entries): {ours['training_roidb_s']:.2f} s; "
                f"reading one entry dict: {ours['entry_ms']:.3f} ms; "
                f"process RSS after imports: {coco['import_rss_mb']:.0f} MB",
            ]
        if not args.skip_loader:
            from pydetectron.data import ensure_shapes_dataset

            ensure_shapes_dataset(tmp / "data" / "shapes", "train")
            lines += ["", "| loader | images/s |", "|---|---|"]
            for row in loader_throughput(tmp / "data", args.loader_batches, args.workers):
                lines.append(f"| {row['what']} | {row['images_per_s']:.1f} |")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
