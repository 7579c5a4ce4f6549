#!/usr/bin/env python
"""Test a detection model on a dataset: detections, COCO result jsons, box/mask/keypoint AP.

Examples:
    # a checkpoint of ours carries its config
    python tools/test_net.py --dataset shapes --load_ckpt out/ckpt/model_step999.pth
    # a torchvision detection state dict with its preset
    python tools/test_net.py --dataset coco2017 --cfg configs/torchvision/fasterrcnn_resnet50_fpn.yaml \
        --load_ckpt fasterrcnn_resnet50_fpn_coco.pth
    # one process per GPU (or --num_procs processes on CPU), results merged
    python tools/test_net.py ... --multi_gpu_testing
    # only entries [0, 2500): writes their detections file, evaluates nothing
    python tools/test_net.py ... --range 0 2500

Detections are stored per range (`detections_range_<start>_<end>.pth`, at most
--chunk_size images each) in the output folder; a run started again reuses every file
made with the same config, weights and dataset, so an interrupted run continues where it
stopped and `--range` runs merge into a full one. The output folder also gets
`bbox_<dataset>_results.json` (and segmentation / keypoint results when the model has
those heads) and `metrics.json` ({dataset: {task: {AP, AP50, AP75, APs, APm, APl}}}, as
fractions of 1, the unit the printed table uses too).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import torch
from tqdm import tqdm

from pydetectron.config import AttrDict, assert_and_infer_cfg
from pydetectron.data import build_test_dataset, register_dataset_from_string
from pydetectron.data.catalog import SHORT_NAMES, contains
from pydetectron.engine.cli import ToolArgumentParser, UsageError, run_tool
from pydetectron.engine.predictor import Predictor, resolve_device
from pydetectron.engine.tool_config import checkpoint_and_cfg
from pydetectron.evaluation import (
    evaluate_dataset,
    find_ranges,
    fingerprint,
    infer_range,
    load_range,
    merge_ranges,
    plan_ranges,
    save_range,
)
from pydetectron.evaluation.coco_eval import write_json
from pydetectron.evaluation.detection_store import weights_identity
from pydetectron.utils.logging import setup_logging
from pydetectron.utils.vis import vis_one_image
from pydetectron.weights import resolve_weights

logger = logging.getLogger("test_net")

PROG = "test_net.py"

# Keys that do not change the detections (left out of the range files' fingerprint).
_VOLATILE_KEYS = ("OUTPUT_DIR", "DATA_DIR", "CUDA", "NUM_GPUS", "VIS", "VIS_TH", "DATA_LOADER", "ROOT_DIR")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset",
        help="short name (shapes, coco2017, keypoints_coco2017, ...) testing its val split, a catalog name "
        "(coco_2017_val), or name=path/to/annotations.json:path/to/images; default TEST.DATASETS",
    )
    parser.add_argument("--cfg", dest="cfg_file", help="config YAML (default: the one stored in --load_ckpt)")
    parser.add_argument(
        "--set", dest="set_cfgs", nargs="+", action="extend", default=[], metavar="KEY VALUE",
        help="config overrides, e.g. --set TEST.SCALE 800 TEST.BBOX_AUG.ENABLED True",
    )  # fmt: skip
    parser.add_argument("--load_ckpt", help="our checkpoint / state dict, or a torchvision detection state dict")
    parser.add_argument("--load_detectron", help="Detectron .pkl weights file (model zoo or converted)")
    parser.add_argument("--output_dir", help="default: <checkpoint folder>/../test, else OUTPUT_DIR/test")
    parser.add_argument("--range", nargs=2, type=int, metavar=("START", "END"), help="only these roidb entries")
    parser.add_argument(
        "--multi_gpu_testing", action="store_true",
        help="split the dataset over one process per GPU (or --num_procs CPU processes; under torchrun, the ranks)",
    )  # fmt: skip
    parser.add_argument("--num_procs", type=int, default=None, help="processes for --multi-gpu-testing")
    parser.add_argument("--vis", action="store_true", help="also save a picture per image (score >= VIS_TH)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU when torch sees one)")
    parser.add_argument("--no_cuda", action="store_true", help="run on the CPU")
    parser.add_argument("--nw", type=int, default=None, help="image reading workers (default DATA_LOADER.NUM_THREADS)")
    parser.add_argument("--chunk_size", type=int, default=500, help="images per detections file")
    parser.add_argument("--data_dir", help="data root (default: $PYDETECTRON_DATA_DIR, else the checkout's data/)")
    args = parser.parse_args(argv)
    if args.range is not None and not 0 <= args.range[0] <= args.range[1]:
        parser.error(f"--range needs 0 <= START <= END, got {args.range}")
    if len(args.set_cfgs) % 2:
        parser.error(f"--set needs KEY VALUE pairs, got {args.set_cfgs}")
    for flag in ("load_ckpt", "load_detectron", "cfg_file"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            parser.error(f"--{flag.replace('_file', '')}: file not found: {path}")
    if args.load_ckpt and args.load_detectron:
        parser.error("give --load_ckpt or --load_detectron, not both")
    return args


def apply_dataset(cfg: AttrDict, name: str) -> None:
    """Point TEST.DATASETS (and, for a short name, MODEL.NUM_CLASSES) at `--dataset`."""
    if "=" in name:
        try:
            cfg.TEST.DATASETS = (register_dataset_from_string(name),)
        except ValueError as error:
            raise UsageError(f"--dataset: {error}") from error
    elif name in SHORT_NAMES:
        cfg.TEST.DATASETS = tuple(SHORT_NAMES[name].test)
        cfg.MODEL.NUM_CLASSES = SHORT_NAMES[name].num_classes
    elif contains(name):
        cfg.TEST.DATASETS = (name,)
    else:
        raise UsageError(f"--dataset: unknown dataset '{name}' (short names: {', '.join(sorted(SHORT_NAMES))})")


def setup_cfg(args) -> tuple[dict | None, AttrDict]:
    """--load_ckpt and a fresh config: --cfg (or the checkpoint's own), --dataset, --data_dir, then --set; frozen."""

    def adjust(cfg: AttrDict) -> None:
        if args.dataset:
            apply_dataset(cfg, args.dataset)
        if args.data_dir:
            cfg.DATA_DIR = os.path.abspath(args.data_dir)

    checkpoint, cfg = checkpoint_and_cfg(args.cfg_file, args.load_ckpt, args.set_cfgs, adjust)
    if not cfg.TEST.DATASETS:
        raise UsageError("no dataset to test: give --dataset or set TEST.DATASETS")
    cfg.VIS = bool(args.vis or cfg.VIS)
    assert_and_infer_cfg(target=cfg)
    return checkpoint, cfg


def weights_path(args, cfg: AttrDict) -> str | None:
    """The weights file: a flag's, else TEST.WEIGHTS (a URL is resolved to its cached download)."""
    return args.load_ckpt or args.load_detectron or (resolve_weights(cfg.TEST.WEIGHTS) if cfg.TEST.WEIGHTS else None)


def default_output_dir(args, cfg: AttrDict) -> str:
    if args.output_dir:
        return args.output_dir
    weights = args.load_ckpt or args.load_detectron
    if weights:
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(weights))), "test")
    return os.path.join(cfg.OUTPUT_DIR, "test")


def settings_fingerprint(cfg: AttrDict, dataset_name: str, roidb, weights: str | None) -> str:
    """What the range files must have been made with to be reused."""
    tree = cfg.to_dict()
    for key in _VOLATILE_KEYS:
        tree.pop(key, None)
    tree["TEST"] = {k: v for k, v in tree["TEST"].items() if k not in ("DATASETS", "WEIGHTS")}
    return fingerprint(
        repr(tree), weights_identity(weights), dataset_name, os.path.realpath(roidb.info.json_file), str(len(roidb))
    )


def torchrun_world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) under torchrun with several processes, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(args, world) -> torch.device:
    if args.no_cuda:
        return torch.device("cpu")
    if args.device:
        return resolve_device(args.device)
    if world is not None and torch.cuda.is_available():
        return torch.device("cuda", world[2])
    return resolve_device(None)


class Tester:
    """Computes and reuses range files for one run; builds the model only when needed."""

    def __init__(self, args, cfg: AttrDict, checkpoint: dict | None, device: torch.device) -> None:
        self.args = args
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.device = device
        self._predictor: Predictor | None = None
        self.weights = weights_path(args, cfg)

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            weights = self.checkpoint if self.checkpoint is not None else self.weights
            if weights is None:
                logger.warning("No weights given (--load_ckpt): testing the initial random weights")
            self._predictor = Predictor(self.cfg, weights, device=self.device)
            logger.info("Testing on %s", self.device)
        return self._predictor

    def ranges(self, dataset_name: str, roidb, output_dir: Path, start: int, end: int) -> list:
        """RangeResults covering [start, end): loaded when already written, else computed and saved."""
        cfg = self.cfg
        stamp = settings_fingerprint(cfg, dataset_name, roidb, self.weights)
        plan = plan_ranges(start, end, find_ranges(output_dir, stamp), self.args.chunk_size)
        todo = sum(e - s for s, e, path in plan if path is None)
        done = (end - start) - todo
        if done:
            logger.info("%s: reusing detections of %d images already in %s", dataset_name, done, output_dir)
        results = []
        bar = tqdm(total=todo, desc=dataset_name, unit="img", dynamic_ncols=True, disable=todo == 0)
        on_image = self._vis_writer(roidb, output_dir) if cfg.VIS else None
        workers = int(cfg.DATA_LOADER.NUM_THREADS if self.args.nw is None else self.args.nw)
        tic = time.perf_counter()
        with bar:
            for s, e, path in plan:
                if path is not None:
                    results.append(load_range(path))
                    continue
                part = infer_range(self.predictor, roidb, s, e, stamp, workers, bar, on_image)
                save_range(output_dir, part)
                results.append(part)
        if todo:
            elapsed = time.perf_counter() - tic
            logger.info("%s: detected %d images in %.1fs (%.3fs/image)", dataset_name, todo, elapsed, elapsed / todo)
        return results

    def _vis_writer(self, roidb, output_dir: Path):
        folder = output_dir / "vis"
        folder.mkdir(parents=True, exist_ok=True)
        names = roidb.classes
        keypoint_names = roidb.info.keypoint_names

        def write(item: dict, prediction) -> None:
            picture = vis_one_image(
                item["image"], prediction.boxes, prediction.scores, prediction.classes, names,
                masks=prediction.masks, keypoints=prediction.keypoints, keypoint_names=keypoint_names,
                thresh=float(self.cfg.VIS_TH),
            )  # fmt: skip
            cv2.imwrite(str(folder / f"{Path(item['path']).stem}.png"), picture)

        return write


def report_failures(dataset_name: str, images) -> int:
    failed = [image for image in images if image.error]
    if failed:
        logger.warning("%s: %d of %d images could not be processed:", dataset_name, len(failed), len(images))
        for image in failed[:20]:
            logger.warning("  image id %d: %s", image.image_id, image.error)
        if len(failed) > 20:
            logger.warning("  ... and %d more", len(failed) - 20)
    return len(failed)


def log_metrics(all_metrics: dict[str, dict]) -> None:
    """A table of every dataset's and task's metrics, in metrics.json's unit (fractions of 1)."""
    rows = [(dataset, task, values) for dataset, tasks in all_metrics.items() for task, values in tasks.items()]
    if not rows:
        return
    names = list(dict.fromkeys(name for _, _, values in rows for name in values))
    width = max(len("dataset"), *(len(dataset) for dataset, _, _ in rows))
    logger.info("COCO metrics (fractions of 1, as stored in metrics.json):")
    logger.info("%s  %-9s %s", "dataset".ljust(width), "task", " ".join(f"{name:>7}" for name in names))
    for dataset, task, values in rows:
        cells = " ".join(f"{values[name]:7.4f}" if name in values else f"{'-':>7}" for name in names)
        logger.info("%s  %-9s %s", dataset.ljust(width), task, cells)


def run_children(args, argv: list[str], dataset_name: str, num_entries: int, output_dir: Path, device) -> bool:
    """--multi-gpu-testing without torchrun: one `--range` process per GPU (or per --num_procs)."""
    gpus = device.type == "cuda"
    count = args.num_procs or (torch.cuda.device_count() if gpus else 2)
    count = max(1, min(count, num_entries))
    bounds = [num_entries * i // count for i in range(count + 1)]
    base = strip_parent_flags(argv)
    children = []
    output_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        start, end = bounds[i], bounds[i + 1]
        command = [sys.executable, os.path.abspath(__file__), *base, "--range", str(start), str(end),
                   "--output_dir", str(output_dir), "--set", "TEST.DATASETS", f"('{dataset_name}',)"]  # fmt: skip
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % max(torch.cuda.device_count(), 1))
            command += ["--device", "cuda"]
        else:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // count))
            command += ["--device", "cpu"]
        log_path = output_dir / f"test_range_{start}_{end}.log"
        log = open(log_path, "w")  # closed once the child has ended
        logger.info("Starting entries [%d, %d) on %s (log: %s)", start, end, f"GPU {i}" if gpus else "CPU", log_path)
        children.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log, log_path))
    failed = []
    for process, log, log_path in children:
        process.wait()
        log.close()
        if process.returncode != 0:
            failed.append(log_path)
    if failed:
        tail = Path(failed[0]).read_text(errors="replace")[-3000:]
        logger.error("%d test processes failed; see %s. Last output:\n%s", len(failed), [str(p) for p in failed], tail)
        return False
    return True


def strip_parent_flags(argv: list[str]) -> list[str]:
    """argv without the flags the parent handles itself (multi-GPU, process count, output dir)."""
    out, skip = [], 0
    for token in argv:
        if skip:
            skip -= 1
            continue
        flag = token.split("=", 1)[0].replace("-", "_")
        if flag == "__multi_gpu_testing":
            continue
        if flag in ("__num_procs", "__output_dir"):
            skip = 0 if "=" in token else 1
            continue
        out.append(token)
    return out


def main(argv=None) -> int:
    """Test; a user error ends with one line on stderr and exit code 2 (--debug: traceback)."""
    return run_tool(_main, argv, PROG)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    setup_logging()
    checkpoint, cfg = setup_cfg(args)
    world = torchrun_world()
    device = pick_device(args, world)
    if world is not None:  # torchrun: every rank takes a shard, rank 0 merges and evaluates
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    spawn = args.multi_gpu_testing and args.range is None and world is None
    tester = Tester(args, cfg, checkpoint, device)
    root = Path(default_output_dir(args, cfg))
    datasets = list(cfg.TEST.DATASETS)
    all_metrics: dict[str, dict] = {}
    failures = total = 0
    for dataset_name in datasets:
        roidb = build_test_dataset(cfg, dataset_name)
        num = len(roidb)
        output_dir = root / dataset_name if len(datasets) > 1 else root
        output_dir.mkdir(parents=True, exist_ok=True)
        start, end = (min(args.range[0], num), min(args.range[1], num)) if args.range is not None else (0, num)
        if spawn and not run_children(args, argv, dataset_name, num, output_dir, device):
            return 1
        elif world is not None:
            rank, size, _ = world
            shard = (end - start + size - 1) // size
            tester.ranges(dataset_name, roidb, output_dir, min(start + rank * shard, end),
                          min(start + (rank + 1) * shard, end))  # fmt: skip
            torch.distributed.barrier()
            if rank != 0:
                continue
        if args.range is not None:
            if world is None:
                tester.ranges(dataset_name, roidb, output_dir, start, end)
            logger.info("%s: detections of entries [%d, %d) are in %s", dataset_name, start, end, output_dir)
            continue
        images = merge_ranges(tester.ranges(dataset_name, roidb, output_dir, 0, num), num)
        failures += report_failures(dataset_name, images)
        total += len(images)
        metrics = evaluate_dataset(
            images, dataset_name, roidb.info.json_file, roidb.info.contiguous_category_id_to_json_id,
            output_dir, plus_one=bool(cfg.MODEL.BOX_PLUS_ONE),
        )  # fmt: skip
        all_metrics[dataset_name] = metrics
    log_metrics(all_metrics)
    if all_metrics:
        write_json(root / "metrics.json", all_metrics)
        logger.info("Wrote %s", root / "metrics.json")
    if world is not None:
        torch.distributed.destroy_process_group()
    if total and failures == total:
        logger.error("No image could be processed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
