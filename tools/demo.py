#!/usr/bin/env python
"""The demo behind `make demo`: train, evaluate and show a detector on the built-in shapes data.

Examples:
    python tools/demo.py                 # Mask R-CNN on shapes (what `make demo` runs)
    python tools/demo.py keypoints       # Keypoint R-CNN on keypoints_shapes (`make demo-keypoints`)
    python tools/demo.py --retrain       # train again even though a finished checkpoint exists

Steps, each one a documented tool run as a subprocess: generate the datasets (once),
train with tools/train_net_step.py (progress: step, losses, ETA), evaluate the val split
with tools/test_net.py (the pycocotools tables), draw pictures of the first val images
with tools/infer_simple.py, then print where the checkpoint, metrics and pictures are.

A finished training run is reused by the next demo (unless --retrain, or the config or
--set changed); an interrupted one is resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydetectron.data.shapes import ensure_shapes_dataset
from pydetectron.engine.checkpoint import Checkpointer
from pydetectron.engine.cli import ToolArgumentParser, UsageError, run_tool
from pydetectron.utils.paths import default_data_dir

PROG = "demo.py"
ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
STATE_FILE = "demo_state.json"


@dataclass(frozen=True)
class DemoTask:
    """One demo: its config, its dataset short name and which metrics it reports."""

    cfg: str
    dataset: str
    keypoints: bool
    tasks: tuple[str, ...]


TASKS = {
    "mask": DemoTask("configs/shapes/e2e_mask_rcnn_R-50-FPN_shapes.yaml", "shapes", False, ("bbox", "segm")),
    "keypoints": DemoTask(
        "configs/shapes/e2e_keypoint_rcnn_R-50-FPN_shapes.yaml", "keypoints_shapes", True, ("bbox", "keypoints")
    ),
}


def parse_args(argv: list[str] | None):
    parser = ToolArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("task", nargs="?", default="mask", choices=sorted(TASKS), help="which demo (default: mask)")
    parser.add_argument("--cfg", dest="cfg_file", help="config file (default: the task's configs/shapes one)")
    parser.add_argument(
        "--set", dest="set_cfgs", default=[], nargs="+", action="extend", metavar="KEY VALUE",
        help="config keys to set for training: KEY VALUE [KEY VALUE ...]",
    )  # fmt: skip
    parser.add_argument("--output_dir", help="default: Outputs/demo/<task> in the checkout")
    parser.add_argument("--data_dir", help="data root (default: $PYDETECTRON_DATA_DIR, else the checkout's data/)")
    parser.add_argument("--retrain", action="store_true", help="train again even if a finished checkpoint exists")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    parser.add_argument("--nw", type=int, default=0, help="data loading workers for training")
    parser.add_argument("--num_pictures", type=int, default=6, help="val images to draw")
    parser.add_argument("--thresh", type=float, default=0.5, help="draw detections scoring at least this")
    parser.add_argument("--disp_interval", type=int, default=20, help="log training progress every N steps")
    args = parser.parse_args(argv)
    if len(args.set_cfgs) % 2:
        parser.error(f"--set needs KEY VALUE pairs, got {len(args.set_cfgs)} items: {args.set_cfgs}")
    for flag in ("threads", "num_pictures", "disp_interval"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.nw < 0:
        parser.error(f"--nw must be >= 0, got {args.nw}")
    return args


def training_fingerprint(cfg_file: Path, set_cfgs: list[str], dataset: str) -> str:
    """What a reusable checkpoint must have been trained with: config text, --set pairs, dataset."""
    digest = hashlib.sha256(cfg_file.read_bytes())
    digest.update(json.dumps([dataset, set_cfgs]).encode())
    return digest.hexdigest()[:16]


def read_state(output_dir: Path) -> dict:
    path = output_dir / STATE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged state file only costs a retraining


def write_state(output_dir: Path, state: dict) -> None:
    (output_dir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")


def banner(text: str) -> None:
    print(f"\n==== demo: {text}", flush=True)


def run_step(name: str, command: list[str], threads: int) -> None:
    """Run one tool with its output streamed to ours; a failure ends the demo naming the step."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    banner(f"{name}: {' '.join(os.path.relpath(c) if c.startswith(str(ROOT)) else c for c in command[1:])}")
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the tool too: the trainer finishes its step and saves a checkpoint.
        print(f"\n==== demo: interrupted; waiting for {name} to stop (a second Ctrl-C stops it at once)", flush=True)
        while process.poll() is None:
            try:
                process.wait()
            except KeyboardInterrupt:
                continue
        raise UsageError(f"{name} interrupted; run the demo again to resume from the last checkpoint") from None
    if returncode != 0:
        raise UsageError(f"{name} failed (exit code {returncode}); see its messages above")
    print(f"==== demo: {name} took {time.monotonic() - start:.0f} s", flush=True)


def val_images(data_dir: Path, task: DemoTask, count: int) -> list[str]:
    images = sorted((data_dir / "shapes" / f"{task.dataset}_val" / "images").iterdir())
    return [str(p) for p in images[:count]]


def train(args, task: DemoTask, cfg_file: Path, data_dir: Path, output_dir: Path) -> Path:
    """The finished checkpoint: reused, resumed or trained from scratch."""
    train_dir = output_dir / "train"
    fingerprint = training_fingerprint(cfg_file, args.set_cfgs, task.dataset)
    state = read_state(output_dir)
    same_run = state.get("fingerprint") == fingerprint
    finished = Path(state.get("checkpoint", "")) if state.get("finished") else None
    if same_run and not args.retrain and finished is not None and finished.is_file():
        banner(f"reusing the trained checkpoint {finished} (retrain with `make demo RETRAIN=1` or --retrain)")
        return finished
    resume = same_run and not args.retrain and Checkpointer(train_dir / "ckpt").latest() is not None
    if not resume:
        for stale in ("train", "test", "pictures"):
            shutil.rmtree(output_dir / stale, ignore_errors=True)
    write_state(output_dir, {"fingerprint": fingerprint, "finished": False})
    command = [
        sys.executable, str(TOOLS / "train_net_step.py"), "--dataset", task.dataset, "--cfg", str(cfg_file),
        "--output_dir", str(train_dir), "--data_dir", str(data_dir), "--nw", str(args.nw), "--no_cuda",
        "--disp_interval", str(args.disp_interval),
    ]  # fmt: skip
    if resume:
        command.append("--resume")
    if args.set_cfgs:
        command += ["--set", *args.set_cfgs]
    run_step("resume training" if resume else "train", command, args.threads)
    checkpoint = Checkpointer(train_dir / "ckpt").latest()
    if checkpoint is None:
        raise UsageError(f"training wrote no checkpoint in {train_dir / 'ckpt'}")
    write_state(output_dir, {"fingerprint": fingerprint, "finished": True, "checkpoint": str(checkpoint)})
    return checkpoint


def summary_lines(metrics_file: Path, task: DemoTask) -> list[str]:
    """'bbox AP 0.612 (AP50 0.9, AP75 0.7)' lines of the val dataset, from test_net's metrics.json."""
    metrics = json.loads(metrics_file.read_text())
    lines = []
    for dataset, per_task in metrics.items():
        for kind in task.tasks:
            if kind in per_task:
                m = per_task[kind]
                lines.append(f"{dataset} {kind:9s} AP {m['AP']:.3f}  (AP50 {m['AP50']:.3f}, AP75 {m['AP75']:.3f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the demo; a user error or failed step ends with one line on stderr and exit code 2."""
    return run_tool(_main, argv, PROG)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    task = TASKS[args.task]
    cfg_file = Path(args.cfg_file or ROOT / task.cfg).resolve()
    if not cfg_file.is_file():
        raise UsageError(f"--cfg: file not found: {cfg_file}")
    data_dir = Path(args.data_dir or default_data_dir()).resolve()
    output_dir = Path(args.output_dir or ROOT / "Outputs" / "demo" / args.task).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    banner(f"{task.dataset} data in {data_dir / 'shapes'}")
    for split in ("train", "val"):
        print(f"  {ensure_shapes_dataset(data_dir / 'shapes', split, keypoints=task.keypoints)}", flush=True)

    checkpoint = train(args, task, cfg_file, data_dir, output_dir)

    test_dir = output_dir / "test"
    run_step("evaluate", [
        sys.executable, str(TOOLS / "test_net.py"), "--dataset", task.dataset, "--load_ckpt", str(checkpoint),
        "--output_dir", str(test_dir), "--data_dir", str(data_dir), "--no_cuda",
    ], args.threads)  # fmt: skip

    pictures = output_dir / "pictures"
    shutil.rmtree(pictures, ignore_errors=True)
    run_step("draw", [
        sys.executable, str(TOOLS / "infer_simple.py"), "--load_ckpt", str(checkpoint), "--dataset", task.dataset,
        "--images", *val_images(data_dir, task, args.num_pictures), "--output_dir", str(pictures),
        "--thresh", str(args.thresh), "--no_cuda",
    ], args.threads)  # fmt: skip

    metrics_file = test_dir / "metrics.json"
    banner(f"done in {time.monotonic() - start:.0f} s")
    for line in summary_lines(metrics_file, task):
        print(f"  {line}")
    print(f"  checkpoint: {checkpoint}")
    print(f"  metrics:    {metrics_file}")
    print(f"  pictures:   {pictures}/")
    print(f"  training log: {output_dir / 'train' / 'train.log'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
