"""Shared pieces of the engine tests: a tiny frozen-norm detector stand-in and tiny shapes data.

`TinyDetector` takes the detector's inputs (images, im_info, targets) and returns a dict of
per-image averaged losses, so that the loss of a batch is the mean of its images' losses:
two half batches accumulated with iter_size 2, or two processes with DDP, must give the
gradients of the whole batch. Its features are padding invariant (1x1 conv, mean over each
image's own pixels), so re-padding a batch does not change them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pydetectron.config import get_cfg, merge_cfg_from_list
from pydetectron.data import build_train_loader
from pydetectron.data.shapes import write_shapes_dataset
from pydetectron.nn import AffineChannel2d


class TinyDetector(nn.Module):
    """Frozen AffineChannel -> 1x1 conv -> per-image masked mean -> linear box/score heads.

    With `random_ops` it also draws from torch's RNG in forward (dropout and a random
    subset of gt boxes, like proposal sampling), to check that RNG states are restored.
    """

    def __init__(self, channels: int = 8, random_ops: bool = False):
        super().__init__()
        self.norm = AffineChannel2d(3)  # frozen
        with torch.no_grad():
            self.norm.weight.fill_(1.0 / 64.0)
        self.conv = nn.Conv2d(3, channels, 1)
        self.box = nn.Linear(channels, 4)
        self.score = nn.Linear(channels, 1)
        self.random_ops = random_ops
        self.dropout = nn.Dropout(0.3)

    def forward(self, images, im_info, targets):
        feats = F.relu(self.conv(self.norm(images)))
        n, _, height, width = feats.shape
        rows = torch.arange(height, device=images.device).view(1, height, 1)
        cols = torch.arange(width, device=images.device).view(1, 1, width)
        mask = (rows < im_info[:, 0].view(n, 1, 1)) & (cols < im_info[:, 1].view(n, 1, 1))
        mask = mask.unsqueeze(1).to(feats.dtype)
        pooled = (feats * mask).sum((2, 3)) / mask.sum((2, 3))
        if self.random_ops:
            pooled = self.dropout(pooled)
        box_targets, score_targets = [], []
        for info, target in zip(im_info, targets):
            boxes = target.boxes.float()
            if self.random_ops and len(boxes) > 1:
                boxes = boxes[torch.randperm(len(boxes), device=boxes.device)[: max(1, len(boxes) // 2)]]
            scale = torch.stack([info[1], info[0], info[1], info[0]])
            box_targets.append(boxes.mean(0) / scale)
            score_targets.append((len(target.boxes) > 2) * 1.0)
        box_targets = torch.stack(box_targets)
        score_targets = torch.tensor(score_targets, device=images.device)
        box_pred = self.box(pooled).float()
        score_pred = self.score(pooled).float().squeeze(1)
        loss_box = F.smooth_l1_loss(box_pred, box_targets, reduction="none").sum(1).mean()
        loss_score = F.binary_cross_entropy_with_logits(score_pred, score_targets)
        accuracy = ((score_pred > 0).float() == score_targets).float().mean()
        return {"loss_box": loss_box, "loss_score": loss_score, "accuracy": accuracy}


def write_tiny_shapes(data_dir: str | os.PathLike, num_images: int = 12) -> Path:
    """A small shapes_train dataset (64..112 px images) under `data_dir`/shapes."""
    out = Path(data_dir) / "shapes" / "shapes_train"
    if not (out / "annotations.json").is_file():
        write_shapes_dataset(out, num_images, seed=0, min_side=64, max_side=112)
    return out


def tiny_cfg(data_dir: str | os.PathLike, ims_per_batch: int = 2):
    """A config for the tiny shapes data: one scale, no aspect grouping, flipped copies."""
    cfg = get_cfg()
    merge_cfg_from_list(
        [
            "TRAIN.DATASETS", "('shapes_train',)",
            "TRAIN.SCALES", "(64,)",
            "TRAIN.MAX_SIZE", "96",
            "TRAIN.IMS_PER_BATCH", str(ims_per_batch),
            "TRAIN.ASPECT_GROUPING", "False",
            "DATA_DIR", str(data_dir),
            "DATA_LOADER.NUM_THREADS", "0",
            "RNG_SEED", "5",
        ],
        target=cfg,
    )
    return cfg


def tiny_schedule(max_iter: int = 8):
    """Warm-up over steps 0-2, decay by 10 at step 5: both happen across the trainer tests' resume points."""
    from pydetectron.engine.lr_schedule import LRSchedule

    return LRSchedule(base_lr=0.05, policy="steps_with_decay", steps=(0, 5), max_iter=max_iter, warm_up_iters=3,
                      warm_up_factor=0.5)  # fmt: skip


def tiny_loader(data_dir, ims_per_batch: int = 2, rank: int = 0, world_size: int = 1):
    cfg = tiny_cfg(data_dir, ims_per_batch)
    return build_train_loader(cfg, rank=rank, world_size=world_size, num_workers=0)


def train_tiny(data_dir, out_dir, ims_per_batch: int, steps: int, rank: int = 0, world_size: int = 1):
    """Train `TinyDetector` with SGD for `steps` steps on this rank's shard; returns (model, result)."""
    from pydetectron.engine.checkpoint import Checkpointer
    from pydetectron.engine.hooks import default_hooks
    from pydetectron.engine.lr_schedule import LRSchedule
    from pydetectron.engine.optimizer import SolverSettings, build_optimizer
    from pydetectron.engine.rng import seed_everything
    from pydetectron.engine.trainer import Trainer, TrainerOptions
    from pydetectron.parallel import init_distributed, wrap_ddp

    info = init_distributed(use_cuda=False)
    seed_everything(0)
    model = TinyDetector()
    schedule = LRSchedule(base_lr=0.1, policy="steps_with_decay", steps=(0,), max_iter=steps, warm_up_iters=0)
    solver = SolverSettings(weight_decay=1e-3)
    optimizer = build_optimizer(model, solver, schedule(0))
    loader = tiny_loader(data_dir, ims_per_batch, rank=rank, world_size=world_size)
    trainer = Trainer(
        wrap_ddp(model, torch.device("cpu")), optimizer, schedule, loader, TrainerOptions(max_iter=steps),
        solver=solver, device="cpu", dist_info=info,
        hooks=default_hooks(checkpointer=Checkpointer(Path(out_dir) / "ckpt"), handle_signals=False),
        keep_history=True,
    )
    return model, trainer.train()


def ddp_worker(rank: int, world_size: int, port: int, data_dir: str, out_dir: str, steps: int) -> None:
    """One process of a gloo DDP run; rank 0 saves the parameters and loss history."""
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    try:
        model, result = train_tiny(data_dir, out_dir, 1, steps, rank, world_size)
        if rank == 0:
            torch.save({"model": model.state_dict(), "history": result.history}, Path(out_dir) / "rank0.pth")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
