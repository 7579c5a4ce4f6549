#!/usr/bin/env python
"""Train a Detectron-style detector, step by step (Detectron.pytorch's train_net_step.py).

Examples:
    # the built-in shapes demo on the CPU
    python tools/train_net_step.py --dataset shapes --cfg configs/shapes/<config>.yaml --no_cuda
    # COCO on one GPU with batch 4 (LR / STEPS / MAX_ITER adapted to the batch)
    python tools/train_net_step.py --dataset coco2017 --cfg configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml \\
        --bs 4 --nw 4 --use_tfboard
    # 8 GPUs, one process each (DistributedDataParallel)
    torchrun --nproc_per_node 8 tools/train_net_step.py --dataset coco2017 --cfg ...
    # resume exactly where a run stopped
    python tools/train_net_step.py ... --load_ckpt Outputs/.../ckpt/model_step9999.pth --resume

Flags given here override the config file and --set (as in Detectron.pytorch).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import socket
import sys
from pathlib import Path

import torch

from pydetectron.config import assert_and_infer_cfg, cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.data import (
    SHORT_NAMES,
    build_train_loader,
    build_train_roidb,
    dataset_names,
    register_dataset,
    register_dataset_from_string,
    register_datasets_from_yaml,
)
from pydetectron.data.loader import resolve_num_workers
from pydetectron.engine.amp import MixedPrecision
from pydetectron.engine.batch_scaling import adapt_cfg_to_batch
from pydetectron.engine.checkpoint import LAST_CHECKPOINT, Checkpointer, load_checkpoint
from pydetectron.engine.losses import NonFiniteLossError
from pydetectron.engine.lr_schedule import LRSchedule
from pydetectron.engine.metrics import JSONLinesWriter, TensorBoardWriter, TrainingStats
from pydetectron.engine.optimizer import SolverSettings, build_optimizer
from pydetectron.engine.rng import seed_everything
from pydetectron.engine.trainer import Trainer, TrainerOptions
from pydetectron.modeling.model_builder import build_model
from pydetectron.parallel import (
    DistributedInfo,
    VariableSizeDataParallel,
    all_gather_objects,
    destroy_distributed,
    init_distributed,
    wrap_ddp,
)
from pydetectron.utils.env import collect_env_info
from pydetectron.utils.logging import setup_logging
from pydetectron.weights import WeightsError, load_initial_weights

logger = logging.getLogger("pydetectron.train_net_step")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset",
        required=True,
        help=f"dataset to train on: a short name ({', '.join(sorted(SHORT_NAMES))}), a catalog or registered "
        "name, several names joined by ',', or name=path/to/annotations.json:path/to/images",
    )
    parser.add_argument("--dataset_json", help="COCO-format annotations of a custom dataset named by --dataset")
    parser.add_argument("--image_dir", help="image folder of the custom dataset named by --dataset")
    parser.add_argument(
        "--dataset_yaml", help="YAML file registering custom datasets (DATASETS: {name: {image_dir: ..., json: ...}})"
    )
    parser.add_argument("--cfg", dest="cfg_file", required=True, help="config file for training")
    parser.add_argument(
        "--set", dest="set_cfgs", default=[], nargs="+", help="config keys to set: KEY VALUE [KEY VALUE ...]"
    )
    parser.add_argument("--disp_interval", default=20, type=int, help="log training info every N steps")
    parser.add_argument("--no_cuda", dest="cuda", action="store_false", help="train on the CPU")
    parser.add_argument("--bs", dest="batch_size", type=int, help="images per step over all devices (default: config)")
    parser.add_argument("--nw", dest="num_workers", type=int, help="data loading workers (DATA_LOADER.NUM_THREADS)")
    parser.add_argument("--iter_size", default=1, type=int, help="update once every iter_size minibatches")
    parser.add_argument("--o", dest="optimizer", choices=("SGD", "Adam"), help="optimizer (SOLVER.TYPE)")
    parser.add_argument("--lr", type=float, help="base learning rate (after the batch-size adaptation)")
    parser.add_argument("--lr_decay_gamma", type=float, help="learning rate decay rate (SOLVER.GAMMA)")
    parser.add_argument("--start_step", default=0, type=int, help="first step (0-based) when not resuming")
    parser.add_argument("--resume", action="store_true", help="resume from --load_ckpt (or the output dir's newest)")
    parser.add_argument("--no_save", action="store_true", help="save no checkpoint, config or metrics file")
    parser.add_argument("--load_ckpt", help="checkpoint to load (weights; everything with --resume)")
    parser.add_argument("--load_detectron", help="Detectron .pkl weights to initialise from")
    parser.add_argument("--use_tfboard", action="store_true", help="also write the scalars for TensorBoard")
    parser.add_argument("--amp", choices=("fp16", "bf16", "none"), help="mixed precision (default: TRAIN.AMP)")
    parser.add_argument("--output_dir", help="output folder (default: Outputs/<cfg name>/<date>_<host>_step)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ config
def resolve_datasets(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test) dataset names for --dataset, registering custom datasets first."""
    if args.dataset_yaml:
        register_datasets_from_yaml(args.dataset_yaml)
    if args.dataset_json or args.image_dir:
        if not (args.dataset_json and args.image_dir):
            raise SystemExit("--dataset_json and --image_dir go together")
        register_dataset(args.dataset, args.image_dir, args.dataset_json, overwrite=True)
        return (args.dataset,), (args.dataset,)
    if args.dataset in SHORT_NAMES:
        short = SHORT_NAMES[args.dataset]
        return tuple(short.train), tuple(short.test)
    if "=" in args.dataset:
        name = register_dataset_from_string(args.dataset)
        return (name,), (name,)
    names = tuple(n.strip() for n in args.dataset.split(",") if n.strip())
    unknown = [n for n in names if n not in dataset_names()]
    if unknown:
        raise SystemExit(
            f"--dataset: unknown dataset {unknown}; use a short name ({', '.join(sorted(SHORT_NAMES))}), a catalog "
            "name, name=json:images, --dataset_json/--image_dir or --dataset_yaml"
        )
    return names, names[:1]


def device_setup(args: argparse.Namespace) -> tuple[torch.device, DistributedInfo, int]:
    """(device, distributed info, number of data-parallel devices)."""
    use_cuda = args.cuda and torch.cuda.is_available()
    if args.cuda and not torch.cuda.is_available():
        logging.getLogger("pydetectron").warning("CUDA is not available: training on the CPU")
    info = init_distributed(use_cuda)
    if use_cuda:
        device = torch.device("cuda", info.local_rank if info.distributed else torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    if info.distributed:
        num_devices = info.world_size
    else:
        num_devices = torch.cuda.device_count() if use_cuda else 1
    return device, info, num_devices


def configure(args: argparse.Namespace, num_devices: int):
    """Merge file, dataset and --set into the global cfg; adapt it to the batch; apply the flags."""
    merge_cfg_from_file(args.cfg_file)
    train_sets, test_sets = resolve_datasets(args)
    cfg.TRAIN.DATASETS = train_sets
    cfg.TEST.DATASETS = test_sets
    if args.set_cfgs:
        merge_cfg_from_list(args.set_cfgs)
    if args.num_workers is not None:
        cfg.DATA_LOADER.NUM_THREADS = args.num_workers
    adjustment = adapt_cfg_to_batch(cfg, args.batch_size, args.iter_size, num_devices)
    if args.optimizer is not None:
        cfg.SOLVER.TYPE = args.optimizer
    if args.lr is not None:
        cfg.SOLVER.BASE_LR = args.lr
    if args.lr_decay_gamma is not None:
        cfg.SOLVER.GAMMA = args.lr_decay_gamma
    if args.amp is not None:
        cfg.TRAIN.AMP = "" if args.amp == "none" else args.amp
    return adjustment


def set_num_classes(num_classes: int, args: argparse.Namespace) -> None:
    """MODEL.NUM_CLASSES from the dataset, unless --set gave it (then they must agree)."""
    given = dict(zip(args.set_cfgs[0::2], args.set_cfgs[1::2])).get("MODEL.NUM_CLASSES")
    if given is not None and int(cfg.MODEL.NUM_CLASSES) != num_classes:
        raise SystemExit(
            f"MODEL.NUM_CLASSES {cfg.MODEL.NUM_CLASSES} (--set) does not match the dataset's {num_classes} "
            "classes (background included)"
        )
    if int(cfg.MODEL.NUM_CLASSES) != num_classes:
        logger.info("MODEL.NUM_CLASSES: %s --> %d (from the dataset)", cfg.MODEL.NUM_CLASSES, num_classes)
    cfg.MODEL.NUM_CLASSES = num_classes


# ------------------------------------------------------------------------------ outputs
def output_dir_for(args: argparse.Namespace, resume_path: str | None) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    if resume_path and Path(resume_path).parent.name == "ckpt":
        return Path(resume_path).parent.parent
    run_name = f"{datetime.datetime.now():%b%d-%H-%M-%S}_{socket.gethostname()}_step"
    cfg_name = Path(args.cfg_file).stem
    return Path("Outputs") / cfg_name / run_name


def resume_path_for(args: argparse.Namespace) -> str | None:
    """The checkpoint to resume from: --load_ckpt, else the newest in --output_dir/ckpt."""
    if not args.resume:
        return None
    if args.load_detectron:
        raise SystemExit("--resume is not supported with --load_detectron (it holds no training state)")
    if args.load_ckpt:
        return args.load_ckpt
    if args.output_dir:
        latest = Checkpointer(Path(args.output_dir) / "ckpt").latest()
        if latest is not None:
            return str(latest)
    raise SystemExit(f"--resume needs --load_ckpt, or --output_dir with a ckpt/{LAST_CHECKPOINT} file")


def write_run_files(output_dir: Path, args: argparse.Namespace) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
    (output_dir / "args.json").write_text(json.dumps(vars(args), indent=2), encoding="utf-8")


# ------------------------------------------------------------------------------ weights
def initialise_weights(model: torch.nn.Module, args: argparse.Namespace, resuming: bool) -> None:
    """Weights to start from: --load_ckpt / --load_detectron / the config's (see load_initial_weights)."""
    if resuming:
        return  # the trainer loads everything from the checkpoint
    try:
        load_initial_weights(model, cfg, load_ckpt=args.load_ckpt, load_detectron=args.load_detectron)
    except WeightsError as error:
        raise SystemExit(str(error)) from None


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.disp_interval < 1:
        raise SystemExit("--disp_interval must be >= 1")
    device, dist_info, num_devices = device_setup(args)
    setup_logging(rank=dist_info.rank)
    try:
        return train(args, device, dist_info, num_devices)
    finally:
        destroy_distributed()


def train(args: argparse.Namespace, device: torch.device, dist_info: DistributedInfo, num_devices: int) -> int:
    logger.info("Called with args: %s", vars(args))
    logger.info("Environment:\n%s", collect_env_info())
    adjustment = configure(args, num_devices)
    cfg.CUDA = device.type == "cuda"
    for line in adjustment.describe():
        logger.info(line)
    logger.info("Data loading workers: %d", resolve_num_workers(cfg.DATA_LOADER.NUM_THREADS))

    roidb = build_train_roidb(cfg)
    logger.info("%d roidb entries from %s", len(roidb), ", ".join(cfg.TRAIN.DATASETS))
    set_num_classes(roidb.num_classes, args)
    resume_path = resume_path_for(args)
    output_dir = Path(all_gather_objects(str(output_dir_for(args, resume_path).absolute()))[0])
    cfg.OUTPUT_DIR = str(output_dir)  # test_net.py writes to <OUTPUT_DIR>/test by default
    assert_and_infer_cfg()
    save = not args.no_save
    if save and dist_info.is_main:
        write_run_files(output_dir, args)
        setup_logging(rank=dist_info.rank, log_file=output_dir / "train.log")
        logger.info("Output folder: %s", output_dir)

    seed_everything(int(cfg.RNG_SEED) + dist_info.rank)
    model = build_model(cfg).to(device)
    initialise_weights(model, args, resuming=resume_path is not None)
    schedule = LRSchedule.from_cfg(cfg)
    solver = SolverSettings.from_cfg(cfg)
    optimizer = build_optimizer(model, solver, schedule(args.start_step))
    amp = MixedPrecision(str(cfg.TRAIN.AMP), device)
    loader = build_train_loader(cfg, rank=dist_info.rank, world_size=dist_info.world_size, roidb=roidb)

    input_device: torch.device | None = device
    if dist_info.distributed:
        model = wrap_ddp(model, device)
    elif device.type == "cuda" and num_devices > 1:
        logger.warning(
            "%d GPUs in one process: using the variable-size DataParallel; torchrun --nproc_per_node %d "
            "(DistributedDataParallel) is faster",
            num_devices,
            num_devices,
        )
        stride = int(cfg.FPN.COARSEST_STRIDE) if cfg.FPN.FPN_ON else 0
        model = VariableSizeDataParallel(model, size_divisibility=stride)
        input_device = None

    writers = []
    if save and dist_info.is_main:
        writers.append(JSONLinesWriter(output_dir / "metrics.jsonl"))
        if args.use_tfboard:
            writers.append(TensorBoardWriter(output_dir))
    stats = TrainingStats(int(cfg.SOLVER.MAX_ITER), args.disp_interval, writers, device) if dist_info.is_main else None
    trainer = Trainer(
        model,
        optimizer,
        schedule,
        loader,
        TrainerOptions(
            max_iter=int(cfg.SOLVER.MAX_ITER),
            iter_size=args.iter_size,
            clip_grad_norm=float(cfg.SOLVER.CLIP_GRAD_NORM),
            snapshot_period=adjustment.snapshot_period,
        ),
        solver=solver,
        device=input_device,
        amp=amp,
        checkpointer=Checkpointer(output_dir / "ckpt") if save else None,
        stats=stats,
        dist_info=dist_info,
        checkpoint_extras={
            "cfg": cfg.dump(),
            "args": {k: v for k, v in vars(args).items()},
            "batch_size": adjustment.batch_size,
            "train_size": len(roidb),
        },
    )
    start_step = args.start_step
    if resume_path is not None:
        logger.info("Resuming from %s", resume_path)
        start_step = trainer.resume(load_checkpoint(resume_path))
    logger.info("Training starts at step %d (MAX_ITER %d)", start_step, cfg.SOLVER.MAX_ITER)
    try:
        result = trainer.train(start_step)
    except NonFiniteLossError as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    if result.checkpoint is not None:
        logger.info("Last checkpoint: %s", result.checkpoint)
    if result.stopped_by:
        logger.warning("Stopped by %s after step %d", result.stopped_by, result.last_step)
        return 128 + getattr(signal, result.stopped_by, signal.SIGTERM)
    logger.info("Training finished (last step %d)", result.last_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
