#!/usr/bin/env python
"""Training speed of the `make demo` config for torch thread counts and data-loading workers.

Example (the BENCHMARK.md table):
    python tools/benchmark_demo.py --settings 1:0 2:0 1:1 2:1 1:2 2:2 --iters 30 --warmup 10 --rounds 2

Each (threads, workers) setting trains tools/train_net_step.py for --iters steps in a fresh
process (OMP_NUM_THREADS=threads, --nw workers, --no_save), logging every step; the settings
run in turn, --rounds times, so a change of machine load hits all of them alike. Per setting it
prints the median seconds per step (steps after --warmup, over all rounds) and the CPU seconds
the whole process and its workers used per step (start-up included), with the load averages.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CFG = ROOT / "configs" / "shapes" / "e2e_mask_rcnn_R-50-FPN_shapes.yaml"
STEP_LINE = re.compile(r"step (\d+)/\d+, lr [0-9.e-]+, time ([0-9.]+)s/it")


def setting(text: str) -> tuple[int, int]:
    try:
        threads, workers = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected THREADS:WORKERS such as 2:0, got {text!r}") from None
    if threads < 1 or workers < 0:
        raise argparse.ArgumentTypeError(f"need THREADS >= 1 and WORKERS >= 0, got {text!r}")
    return threads, workers


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", default=str(DEFAULT_CFG), help="training config (default: the mask demo's)")
    parser.add_argument("--dataset", default="shapes", help="--dataset of train_net_step.py")
    parser.add_argument("--settings", nargs="+", type=setting, default=[(1, 0), (2, 0)], help="THREADS:WORKERS")
    parser.add_argument("--iters", type=int, default=30, help="training steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps of a run left out of the median")
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting, interleaved")
    parser.add_argument("--data_dir", help="data root (default: $PYDETECTRON_DATA_DIR, else the checkout's data/)")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.iters:
        parser.error(f"need 0 <= --warmup < --iters, got {args.warmup} and {args.iters}")
    return args


def run_once(args, threads: int, workers: int) -> tuple[list[float], float]:
    """(seconds of each step after the warm-up, CPU seconds per step of the whole run)."""
    command = [
        sys.executable, str(ROOT / "tools" / "train_net_step.py"), "--dataset", args.dataset, "--cfg", args.cfg,
        "--no_cuda", "--no_save", "--nw", str(workers), "--disp_interval", "1",
        "--set", "SOLVER.MAX_ITER", str(args.iters),
    ]  # fmt: skip
    if args.data_dir:
        command += ["--data_dir", args.data_dir]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        sys.exit(f"training failed with {threads} threads, {workers} workers:\n{process.stderr[-3000:]}")
    times = [float(t) for step, t in STEP_LINE.findall(process.stdout + process.stderr) if int(step) >= args.warmup]
    if not times:
        sys.exit(f"no step lines in the output of: {' '.join(command)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return times, cpu / args.iters


def main(argv=None) -> int:
    args = parse_args(argv)
    step_times: dict[tuple[int, int], list[float]] = {s: [] for s in args.settings}
    cpu_per_step: dict[tuple[int, int], list[float]] = {s: [] for s in args.settings}
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    start = time.monotonic()
    for round_index in range(args.rounds):
        for threads, workers in args.settings:
            times, cpu = run_once(args, threads, workers)
            step_times[(threads, workers)] += times
            cpu_per_step[(threads, workers)].append(cpu)
            print(f"round {round_index + 1}: threads {threads}, workers {workers}: median "
                  f"{statistics.median(times):.3f} s/step, {cpu:.3f} CPU s/step, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"({time.monotonic() - start:.0f} s)")  # fmt: skip
    print("| threads | --nw | median s/step | CPU s/step (whole run) |")
    print("|---|---|---|---|")
    for threads, workers in args.settings:
        print(f"| {threads} | {workers} | {statistics.median(step_times[(threads, workers)]):.3f} | "
              f"{statistics.median(cpu_per_step[(threads, workers)]):.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
