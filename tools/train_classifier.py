#!/usr/bin/env python
"""Pre-train any registered backbone as an image classifier (the vision-toolbox recipe).

Examples:
    # ImageNet layout (ImageFolder), the default recipe on one GPU
    python tools/train_classifier.py --backbone cspdarknet53 --train ImageNet/train --val ImageNet/val \\
        --batch-size 256 --amp --output-dir out/cspdarknet53
    # WebDataset tar shards (<key>.jpg + <key>.cls), small-model recipe
    python tools/train_classifier.py --backbone vovnet19_slim_ese --recipe small --webdataset --num-classes 1000 \\
        --train 'shards/imagenet-train-{000000..000146}.tar' --val 'shards/imagenet-val-{000000..000006}.tar'
    # the generated shapes ImageFolder on a CPU
    python tools/train_classifier.py --backbone darknet_yolov5n --make-shapes data/shapes_cls --recipe small \\
        --train data/shapes_cls/train --val data/shapes_cls/val --train-crop-size 48 --val-resize-size 56 \\
        --val-crop-size 48 --batch-size 32 --lr 0.1 --epochs 10 --warmup-epochs 1

Recipe (torchvision's, as vision-toolbox uses it): SGD with momentum, LR 0.5 per 1024
images (linear scaling), linear warm-up then cosine decay per iteration, weight decay
2e-5 on conv/linear weights only, label smoothing 0.1, RandomResizedCrop + flip +
TrivialAugmentWide, RandomErasing 0.1, CutMix (alpha 1) or MixUp (alpha 0.2) per batch,
FixRes sizes (train crop 176, val resize 232 / crop 224), optional AMP and EMA.
`--recipe small` drops label smoothing, erasing, CutMix and MixUp; `--recipe large`
trains at 224. Explicit options override the recipe.

The output folder gets `checkpoint.pth` (last epoch), `best.pth` (best val top-1) and
`metrics.json`. A checkpoint holds the weights under 'model' (`backbone.*`, `head.*`)
and plain metadata; `pydetectron.backbones.<name>(pretrained=path)` loads its backbone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from pydetectron.backbones import BACKBONES
from pydetectron.classification import (
    BatchMix,
    TarShardDataset,
    build_classifier,
    classifier_checkpoint,
    count_samples,
    evaluate,
    expand_shards,
    make_ema,
    parameter_groups,
    save_checkpoint,
    train_one_epoch,
    train_transform,
    val_transform,
    warmup_cosine_factor,
    write_shapes_image_folder,
)

logger = logging.getLogger("train_classifier")

RECIPES = {
    "default": {
        "label_smoothing": 0.1,
        "mixup_alpha": 0.2,
        "cutmix_alpha": 1.0,
        "random_erasing": 0.1,
        "train_crop_size": 176,
    },
    "small": {"label_smoothing": 0.0, "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "random_erasing": 0.0},
    "large": {"train_crop_size": 224},
}
DEFAULTS = {
    "label_smoothing": 0.1,
    "mixup_alpha": 0.2,
    "cutmix_alpha": 1.0,
    "random_erasing": 0.1,
    "train_crop_size": 176,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backbone", required=True, help="a registered backbone name (pydetectron.backbones)")
    p.add_argument("--train", required=True, help="ImageFolder directory, or tar shards with --webdataset")
    p.add_argument("--val", required=True, help="ImageFolder directory, or tar shards with --webdataset")
    p.add_argument("--webdataset", action="store_true", help="--train/--val are tar shard specs (dir, glob, {a..b})")
    p.add_argument("--num-classes", type=int, help="number of classes (required with --webdataset)")
    p.add_argument("--train-size", type=int, help="--webdataset: training images (default: counted)")
    p.add_argument("--make-shapes", metavar="DIR", help="first write the generated shapes ImageFolder to DIR")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, help="learning rate (default: 0.5 x batch-size / 1024)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=2e-5)
    p.add_argument("--norm-weight-decay", type=float, default=0.0)
    p.add_argument("--bias-weight-decay", type=float, default=0.0)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--mixup-alpha", type=float)
    p.add_argument("--cutmix-alpha", type=float)
    p.add_argument("--random-erasing", type=float)
    p.add_argument("--no-trivial-augment", action="store_true")
    p.add_argument("--min-crop-scale", type=float, default=0.08, help="RandomResizedCrop's smallest area fraction")
    p.add_argument("--train-crop-size", type=int)
    p.add_argument("--val-resize-size", type=int, default=232)
    p.add_argument("--val-crop-size", type=int, default=224)
    p.add_argument("--warmup-epochs", type=float, default=5.0)
    p.add_argument("--warmup-factor", type=float, default=0.01)
    p.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--ema-decay", type=float, default=0.0, help="EMA of the weights (e.g. 0.99998); 0: off")
    p.add_argument("--ema-steps", type=int, default=32, help="update the EMA every this many iterations")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--pretrained", help="local weights file to start the backbone from")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--max-steps", type=int, help="stop after this many iterations (short runs)")
    p.add_argument("--log-interval", type=int, default=50)
    p.add_argument("--output-dir", default="output/classifier")
    args = p.parse_args(argv)
    for key, value in {**DEFAULTS, **RECIPES[args.recipe]}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.lr is None:
        args.lr = 0.5 * args.batch_size / 1024
    if args.backbone not in BACKBONES:
        p.error(f"--backbone {args.backbone!r} is not registered; known: {', '.join(BACKBONES)}")
    if args.webdataset and args.num_classes is None:
        p.error("--webdataset needs --num-classes")
    return args


def build_data(args, device: torch.device):
    """Train/val loaders, class names and training steps per epoch."""
    train_tf = train_transform(
        args.train_crop_size, not args.no_trivial_augment, args.random_erasing, args.min_crop_scale
    )
    val_tf = val_transform(args.val_resize_size, args.val_crop_size)
    pin = device.type == "cuda"
    if args.webdataset:
        train_shards, val_shards = expand_shards(args.train), expand_shards(args.val)
        train_set = TarShardDataset(train_shards, train_tf, shuffle=True, seed=args.seed)
        val_set = TarShardDataset(val_shards, val_tf)
        classes = [str(i) for i in range(args.num_classes)]
        train_size = args.train_size or count_samples(train_shards)
        shuffle = None
    else:
        train_set, val_set = ImageFolder(args.train, train_tf), ImageFolder(args.val, val_tf)
        if val_set.classes != train_set.classes:
            raise SystemExit(f"{args.val}: classes {val_set.classes} differ from {args.train}'s {train_set.classes}")
        classes, train_size, shuffle = train_set.classes, len(train_set), True
    if train_size < args.batch_size:
        raise SystemExit(f"{args.train}: {train_size} training images, fewer than one batch of {args.batch_size}")
    # Persistent workers would keep their first-epoch copy of a tar dataset (set_epoch lost).
    persistent = args.workers > 0 and not args.webdataset
    common = {"num_workers": args.workers, "pin_memory": pin, "persistent_workers": persistent}
    train_loader = DataLoader(train_set, args.batch_size, shuffle=shuffle, drop_last=True, **common)
    val_loader = DataLoader(val_set, args.batch_size, **common)
    return train_set, train_loader, val_loader, classes, train_size // args.batch_size


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    device = torch.device(args.device)
    if args.make_shapes:
        write_shapes_image_folder(args.make_shapes, seed=args.seed)
    train_set, train_loader, val_loader, classes, steps_per_epoch = build_data(args, device)

    model = build_classifier(args.backbone, len(classes), args.pretrained, args.dropout).to(device)
    groups = parameter_groups(model, args.weight_decay, args.norm_weight_decay, args.bias_weight_decay)
    optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum)
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    warmup_steps = round(args.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, args.warmup_factor)
    )
    scaler = torch.amp.GradScaler("cuda") if args.amp and device.type == "cuda" else None
    ema = make_ema(model, args.ema_decay) if args.ema_decay > 0 else None
    mix = BatchMix(len(classes), args.cutmix_alpha, args.mixup_alpha)
    logger.info(
        "%s on %d classes, %d steps/epoch x %d epochs, lr %.4g, recipe %s",
        args.backbone, len(classes), steps_per_epoch, args.epochs, args.lr, args.recipe,
    )

    settings = {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool | type(None))}
    best, step, history = -1.0, 0, []
    for epoch in range(args.epochs):
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        start = time.time()
        step, train_loss = train_one_epoch(
            model, train_loader, optimizer, scheduler, device, mix, args.label_smoothing, args.amp, scaler,
            ema, args.ema_steps, step, args.max_steps, args.log_interval,
        )
        evaluated = ema.module if ema is not None else model
        metrics = evaluate(evaluated, val_loader, device, args.amp)
        record = {"epoch": epoch + 1, "step": step, "train_loss": train_loss, **metrics, "seconds": time.time() - start}
        history.append(record)
        logger.info(
            "epoch %d: train loss %.4f, val top-1 %.4f top-5 %.4f (%s)",
            epoch + 1, train_loss, metrics["top1"], metrics["top5"], "EMA" if ema is not None else "model",
        )
        extra = {"model_raw": {k: v.detach().cpu() for k, v in model.state_dict().items()}} if ema is not None else {}
        checkpoint = classifier_checkpoint(
            evaluated, args.backbone, classes, epoch=epoch + 1, step=step, top1=metrics["top1"],
            top5=metrics["top5"], ema=ema is not None, settings=settings, **extra,
        )
        save_checkpoint(checkpoint, os.path.join(args.output_dir, "checkpoint.pth"))
        if metrics["top1"] > best:
            best = metrics["top1"]
            save_checkpoint(checkpoint, os.path.join(args.output_dir, "best.pth"))
        if args.max_steps is not None and step >= args.max_steps:
            break
    summary = {"backbone": args.backbone, "best_top1": best, "history": history}
    with open(os.path.join(args.output_dir, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
