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
    # box AP on TEST.DATASETS every 500 steps and at the end; the best weights in ckpt/model_best.pth
    python tools/train_net_step.py ... --eval_period 500 --best_metric bbox/AP
    # resume exactly where a run stopped
    python tools/train_net_step.py ... --load_ckpt Outputs/.../ckpt/model_step9999.pth --resume

Flags given here override the config file and --set (as in Detectron.pytorch). SIGINT,
SIGTERM or SIGUSR1 (to the process or its whole group) finish the current step, write a
checkpoint and stop; a second signal stops at once.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import torch

from pydetectron.config import AttrDict, assert_and_infer_cfg
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
from pydetectron.engine.batch_scaling import BatchAdjustment, adapt_cfg_to_batch
from pydetectron.engine.checkpoint import LAST_CHECKPOINT, Checkpointer, load_checkpoint
from pydetectron.engine.cli import ToolArgumentParser, UsageError, run_tool
from pydetectron.engine.evaluator import DatasetEvaluator
from pydetectron.engine.hooks import default_hooks
from pydetectron.engine.losses import NonFiniteLossError
from pydetectron.engine.lr_schedule import LRSchedule
from pydetectron.engine.metrics import JSONLinesWriter, TensorBoardWriter, TrainingStats
from pydetectron.engine.optimizer import SolverSettings, build_optimizer
from pydetectron.engine.rng import seed_everything
from pydetectron.engine.signals import StopAborted
from pydetectron.engine.tool_config import tool_cfg
from pydetectron.engine.trainer import Trainer, TrainerOptions, TrainResult
from pydetectron.modeling.model_builder import build_model
from pydetectron.parallel import (
    DistributedInfo,
    VariableSizeDataParallel,
    all_gather_objects,
    destroy_distributed,
    init_distributed,
    launched_by_torchrun,
    wrap_ddp,
)
from pydetectron.utils.env import collect_env_info
from pydetectron.utils.logging import setup_logging
from pydetectron.weights import WeightsError, load_initial_weights

logger = logging.getLogger("pydetectron.train_net_step")

PROG = "train_net_step.py"
BEST_CHECKPOINT = "model_best.pth"
# torchrun relays the signal it gets to its children: a repeat within this many seconds is that relay.
RELAYED_SIGNAL_WINDOW = 5.0


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
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
        "--set", dest="set_cfgs", default=[], nargs="+", action="extend", metavar="KEY VALUE",
        help="config keys to set: KEY VALUE [KEY VALUE ...] (may be given several times)",
    )  # fmt: skip
    parser.add_argument("--data_dir", help="data root (default: $PYDETECTRON_DATA_DIR, else the checkout's data/)")
    parser.add_argument("--disp_interval", default=20, type=_at_least(1), help="log training info every N steps")
    parser.add_argument("--no_cuda", dest="cuda", action="store_false", help="train on the CPU")
    parser.add_argument(
        "--bs", dest="batch_size", type=_at_least(1), help="images per step over all devices (default: config)"
    )
    parser.add_argument(
        "--nw", dest="num_workers", type=_at_least(0), help="data loading workers (DATA_LOADER.NUM_THREADS)"
    )
    parser.add_argument("--iter_size", default=1, type=_at_least(1), help="update once every iter_size minibatches")
    parser.add_argument("--o", dest="optimizer", choices=("SGD", "Adam", "AdamW"), help="optimizer (SOLVER.TYPE)")
    parser.add_argument("--lr", type=float, help="base learning rate (after the batch-size adaptation)")
    parser.add_argument("--lr_decay_gamma", type=float, help="learning rate decay rate (SOLVER.GAMMA)")
    parser.add_argument("--start_step", default=0, type=_at_least(0), help="first step (0-based) when not resuming")
    parser.add_argument("--resume", action="store_true", help="resume from --load_ckpt (or the output dir's newest)")
    parser.add_argument("--no_save", action="store_true", help="save no checkpoint, config or metrics file")
    parser.add_argument("--load_ckpt", help="checkpoint to load (weights; everything with --resume)")
    parser.add_argument("--load_detectron", help="Detectron .pkl weights to initialise from")
    parser.add_argument("--use_tfboard", action="store_true", help="also write the scalars for TensorBoard")
    parser.add_argument("--amp", choices=("fp16", "bf16", "none"), help="mixed precision (default: TRAIN.AMP)")
    parser.add_argument(
        "--eval_period", type=_at_least(0),
        help="evaluate TEST.DATASETS every N steps of this run and at the end (default: TRAIN.EVAL_PERIOD; 0 = off)",
    )  # fmt: skip
    parser.add_argument(
        "--best_metric", default="bbox/AP",
        help=f"keep ckpt/{BEST_CHECKPOINT} by this evaluation metric (higher is better; '' = none)",
    )  # fmt: skip
    parser.add_argument("--ema_decay", type=float, help="EMA of the weights, e.g. 0.999 (default: TRAIN.EMA_DECAY)")
    parser.add_argument("--output_dir", help="output folder (default: Outputs/<cfg name>/<date>_<host>_step)")
    args = parser.parse_args(argv)
    if len(args.set_cfgs) % 2:
        parser.error(f"--set needs KEY VALUE pairs, got {len(args.set_cfgs)} items: {args.set_cfgs}")
    if args.ema_decay is not None and not 0.0 <= args.ema_decay < 1.0:
        parser.error(f"--ema_decay must lie in [0, 1) (0 = off), got {args.ema_decay}")
    if not os.path.isfile(args.cfg_file):
        parser.error(f"--cfg: file not found: {args.cfg_file}")
    return args


# ------------------------------------------------------------------------------ config
def resolve_datasets(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test) dataset names for --dataset, registering custom datasets first."""
    if args.dataset_yaml:
        try:
            register_datasets_from_yaml(args.dataset_yaml)
        except ValueError as error:
            raise UsageError(f"--dataset_yaml: {error}") from error
    if args.dataset_json or args.image_dir:
        if not (args.dataset_json and args.image_dir):
            raise UsageError("--dataset_json and --image_dir go together")
        register_dataset(args.dataset, args.image_dir, args.dataset_json, overwrite=True)
        return (args.dataset,), (args.dataset,)
    if args.dataset in SHORT_NAMES:
        short = SHORT_NAMES[args.dataset]
        return tuple(short.train), tuple(short.test)
    if "=" in args.dataset:
        try:
            name = register_dataset_from_string(args.dataset)
        except ValueError as error:
            raise UsageError(f"--dataset: {error}") from error
        return (name,), (name,)
    names = tuple(n.strip() for n in args.dataset.split(",") if n.strip())
    unknown = [n for n in names if n not in dataset_names()]
    if unknown:
        raise UsageError(
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


def configure(args: argparse.Namespace, num_devices: int) -> tuple[AttrDict, BatchAdjustment]:
    """A fresh config: file, dataset, --set, then the flags; adapted to the batch (not frozen yet)."""
    train_sets, test_sets = resolve_datasets(args)

    def datasets(cfg: AttrDict) -> None:
        cfg.TRAIN.DATASETS, cfg.TEST.DATASETS = train_sets, test_sets
        if args.data_dir:
            cfg.DATA_DIR = os.path.abspath(args.data_dir)

    cfg = tool_cfg(args.cfg_file, set_cfgs=args.set_cfgs, adjust=datasets)
    if args.num_workers is not None:
        cfg.DATA_LOADER.NUM_THREADS = args.num_workers
    try:
        adjustment = adapt_cfg_to_batch(cfg, args.batch_size, args.iter_size, num_devices)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.optimizer is not None:
        cfg.SOLVER.TYPE = args.optimizer
    if args.lr is not None:
        cfg.SOLVER.BASE_LR = args.lr
    if args.lr_decay_gamma is not None:
        cfg.SOLVER.GAMMA = args.lr_decay_gamma
    if args.amp is not None:
        cfg.TRAIN.AMP = "" if args.amp == "none" else args.amp
    if args.eval_period is not None:
        cfg.TRAIN.EVAL_PERIOD = args.eval_period
    if args.ema_decay is not None:
        cfg.TRAIN.EMA_DECAY = args.ema_decay
    return cfg, adjustment


def set_num_classes(cfg: AttrDict, num_classes: int, args: argparse.Namespace) -> None:
    """MODEL.NUM_CLASSES from the dataset, unless --set gave it (then they must agree)."""
    given = dict(zip(args.set_cfgs[0::2], args.set_cfgs[1::2])).get("MODEL.NUM_CLASSES")
    if given is not None and int(cfg.MODEL.NUM_CLASSES) != num_classes:
        raise UsageError(
            f"MODEL.NUM_CLASSES {cfg.MODEL.NUM_CLASSES} (--set) does not match the dataset's {num_classes} "
            "classes (background included); leave it out, it follows the dataset"
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


def resume_path_for(args: argparse.Namespace, cfg: AttrDict) -> str | None:
    """The checkpoint to resume from: --load_ckpt, else the newest in --output_dir/ckpt.

    Without --resume, TRAIN.AUTO_RESUME (Detectron's default) resumes from --output_dir's
    newest checkpoint when there is one and no weights flag says where to start.
    """
    if not args.resume:
        if cfg.TRAIN.AUTO_RESUME and args.output_dir and not (args.load_ckpt or args.load_detectron):
            latest = Checkpointer(Path(args.output_dir) / "ckpt").latest()
            if latest is not None:
                logger.info("TRAIN.AUTO_RESUME: %s holds a checkpoint; resuming from it", args.output_dir)
                return str(latest)
        return None
    if args.load_detectron:
        raise UsageError("--resume is not supported with --load_detectron (it holds no training state)")
    if args.load_ckpt:
        return args.load_ckpt
    if args.output_dir:
        latest = Checkpointer(Path(args.output_dir) / "ckpt").latest()
        if latest is not None:
            return str(latest)
    raise UsageError(f"--resume needs --load_ckpt, or --output_dir with a ckpt/{LAST_CHECKPOINT} file")


def write_run_files(cfg: AttrDict, output_dir: Path, args: argparse.Namespace) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
    (output_dir / "args.json").write_text(json.dumps(vars(args), indent=2), encoding="utf-8")


# ------------------------------------------------------------------------------ weights
def initialise_weights(model: torch.nn.Module, args: argparse.Namespace, cfg: AttrDict, resuming: bool) -> None:
    """Weights to start from: --load_ckpt / --load_detectron / the config's (see load_initial_weights)."""
    if resuming:
        return  # the trainer loads everything from the checkpoint
    try:
        load_initial_weights(model, cfg, load_ckpt=args.load_ckpt, load_detectron=args.load_detectron)
    except WeightsError as error:
        raise UsageError(" ".join(str(error).split())) from None


def read_resume_checkpoint(path: str) -> dict:
    try:
        return load_checkpoint(path)
    except FileNotFoundError:
        raise UsageError(f"--load_ckpt: checkpoint not found: {path}") from None


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """Train; a user error ends with one line on stderr and exit code 2 (--debug: traceback)."""
    return run_tool(_main, argv, PROG)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    setup_logging(rank=int(os.environ.get("RANK", "0")))
    device, dist_info, num_devices = device_setup(args)
    setup_logging(rank=dist_info.rank)
    try:
        return train(args, device, dist_info, num_devices)
    finally:
        destroy_distributed()


def _evaluate_nowhere(weights, step):  # the hook calls `evaluate` on rank 0 only
    raise RuntimeError("evaluation runs on the main process only")


def build_trainer(args, cfg, model, roidb, device, dist_info, num_devices, adjustment, output_dir) -> Trainer:
    """The trainer with the standard hooks, for this process of the run."""
    schedule = LRSchedule.from_cfg(cfg)
    solver = SolverSettings.from_cfg(cfg)
    optimizer = build_optimizer(model, solver, schedule(args.start_step))
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

    save, main_process = not args.no_save, dist_info.is_main
    writers = []
    if save and main_process:
        writers.append(JSONLinesWriter(output_dir / "metrics.jsonl"))
        if args.use_tfboard:
            writers.append(TensorBoardWriter(output_dir))
    eval_period = int(cfg.TRAIN.EVAL_PERIOD)
    evaluate = None
    if eval_period > 0:
        results_dir = output_dir / "eval" if save else None  # --no_save: a temporary folder
        evaluate = DatasetEvaluator.from_cfg(cfg, results_dir, device) if main_process else _evaluate_nowhere
    extras = {
        "cfg": cfg.dump(),
        "args": dict(vars(args)),
        "batch_size": adjustment.batch_size,
        "train_size": len(roidb),
    }
    hooks = default_hooks(
        checkpointer=Checkpointer(output_dir / "ckpt") if save else None,
        snapshot_period=adjustment.snapshot_period,
        checkpoint_extras=extras,
        stats=TrainingStats(int(cfg.SOLVER.MAX_ITER), args.disp_interval, writers, device) if main_process else None,
        signal_repeat_window=RELAYED_SIGNAL_WINDOW if launched_by_torchrun() else 0.0,
        lr_log_threshold=solver.log_lr_change_threshold,
        ema_decay=float(cfg.TRAIN.EMA_DECAY),
        evaluate=evaluate,
        eval_period=eval_period,
        best_metric=args.best_metric if save else "",
        best_path=output_dir / "ckpt" / BEST_CHECKPOINT,
        writers=writers,
    )
    options = TrainerOptions(
        max_iter=int(cfg.SOLVER.MAX_ITER), iter_size=args.iter_size, clip_grad_norm=float(cfg.SOLVER.CLIP_GRAD_NORM)
    )
    return Trainer(
        model, optimizer, schedule, loader, options, solver=solver, device=input_device,
        amp=MixedPrecision(str(cfg.TRAIN.AMP), device), dist_info=dist_info, hooks=hooks,
    )  # fmt: skip


def train(args: argparse.Namespace, device: torch.device, dist_info: DistributedInfo, num_devices: int) -> int:
    logger.info("Called with args: %s", vars(args))
    logger.info("Environment:\n%s", collect_env_info())
    cfg, adjustment = configure(args, num_devices)
    cfg.CUDA = device.type == "cuda"
    for line in adjustment.describe():
        logger.info(line)
    logger.info("Data loading workers: %d", resolve_num_workers(cfg.DATA_LOADER.NUM_THREADS))

    roidb = build_train_roidb(cfg)
    logger.info("%d roidb entries from %s", len(roidb), ", ".join(cfg.TRAIN.DATASETS))
    set_num_classes(cfg, roidb.num_classes, args)
    resume_path = resume_path_for(args, cfg)
    checkpoint = read_resume_checkpoint(resume_path) if resume_path is not None else None
    output_dir = Path(all_gather_objects(str(output_dir_for(args, resume_path).absolute()))[0])
    cfg.OUTPUT_DIR = str(output_dir)  # test_net.py writes to <OUTPUT_DIR>/test by default
    assert_and_infer_cfg(target=cfg)
    if cfg.TRAIN.EVAL_PERIOD:
        logger.info("Evaluation on %s every %d steps and at the end", ", ".join(cfg.TEST.DATASETS),
                    cfg.TRAIN.EVAL_PERIOD)  # fmt: skip
    if not args.no_save and dist_info.is_main:
        write_run_files(cfg, output_dir, args)
        setup_logging(rank=dist_info.rank, log_file=output_dir / "train.log")
        logger.info("Output folder: %s", output_dir)

    seed_everything(int(cfg.RNG_SEED) + dist_info.rank)
    model = build_model(cfg).to(device)
    initialise_weights(model, args, cfg, resuming=checkpoint is not None)
    trainer = build_trainer(args, cfg, model, roidb, device, dist_info, num_devices, adjustment, output_dir)
    start_step = args.start_step
    if checkpoint is not None:
        logger.info("Resuming from %s", resume_path)
        try:
            start_step = trainer.resume(checkpoint)
        except (ValueError, KeyError, RuntimeError) as error:
            raise UsageError(f"--resume from {resume_path}: {' '.join(str(error).split())}") from error
    logger.info("Training starts at step %d (MAX_ITER %d)", start_step, cfg.SOLVER.MAX_ITER)
    return run_training(trainer, start_step, output_dir, args)


def run_training(trainer: Trainer, start_step: int, output_dir: Path, args: argparse.Namespace) -> int:
    """Train and turn how it ended into log lines and an exit code."""
    try:
        result = trainer.train(start_step)
    except NonFiniteLossError as error:
        logger.error("%s", error)
        return 1
    except StopAborted as error:
        logger.error("Stopped at once by a second %s; nothing more was saved. Last checkpoint: %s",
                     error.signal_name, _newest(output_dir, args) or "none")  # fmt: skip
        return 128 + getattr(signal, error.signal_name, signal.SIGTERM)
    except KeyboardInterrupt:
        logger.error("Interrupted. Last checkpoint: %s", _newest(output_dir, args) or "none")
        return 128 + signal.SIGINT
    return report(result, output_dir, args, trainer.dist.is_main)


def _newest(output_dir: Path, args: argparse.Namespace) -> Path | None:
    return None if args.no_save else Checkpointer(output_dir / "ckpt").latest()


def report(result: TrainResult, output_dir: Path, args: argparse.Namespace, is_main: bool) -> int:
    if result.checkpoint is not None:
        logger.info("Last checkpoint: %s", result.checkpoint)
    if result.stopped_by:
        if args.no_save:
            how = "nothing saved (--no_save)"
        elif not is_main:
            how = "the main process saved the checkpoint"
        elif result.checkpoint is not None:
            how = f"resume with: --resume --output_dir {output_dir}"
        else:
            how = "no step had finished: nothing to save"
        logger.warning("Stopped by %s after step %d; %s", result.stopped_by, result.last_step, how)
        return 128 + getattr(signal, result.stopped_by, signal.SIGTERM)
    logger.info("Training finished (last step %d)", result.last_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
