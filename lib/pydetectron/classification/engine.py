"""Training and evaluation loops of the classifier recipe, and its checkpoint format."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .data import IMAGENET_MEAN, IMAGENET_STD, BatchMix

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "pydetectron.classifier"


def autocast(device: torch.device, enabled: bool):
    """Mixed precision: float16 on CUDA, bfloat16 on CPU; a no-op when not enabled."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> list[int]:
    """How many rows have their label among the k highest logits, for each k."""
    top = logits.topk(max(ks), dim=1).indices
    hits = top == labels[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """Exponential moving average of the weights and BatchNorm buffers (`decay` per update)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    mix: BatchMix,
    label_smoothing: float = 0.0,
    amp: bool = False,
    scaler: torch.amp.GradScaler | None = None,
    ema: AveragedModel | None = None,
    ema_steps: int = 1,
    step: int = 0,
    max_steps: int | None = None,
    log_interval: int = 50,
) -> tuple[int, float]:
    """One pass over `loader`, stepping the LR schedule every iteration.

    Returns the global step after the epoch and the mean training loss. `max_steps` stops
    early (short runs and tests).
    """
    model.train()
    total_loss, batches = 0.0, 0
    for images, labels in loader:
        if max_steps is not None and step >= max_steps:
            break
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        images, targets = mix(images, labels)
        with autocast(device, amp):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        step += 1
        if ema is not None and step % ema_steps == 0:
            ema.update_parameters(model)
        total_loss += loss.item()
        batches += 1
        if log_interval and step % log_interval == 0:
            logger.info("step %d  loss %.4f  lr %.5f", step, loss.item(), optimizer.param_groups[0]["lr"])
    return step, total_loss / max(batches, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, amp: bool = False) -> dict[str, float]:
    """Top-1, top-5 (top-k with k = min(5, classes)) accuracy and mean loss over `loader`."""
    model.eval()
    correct1 = correct5 = seen = 0
    loss_sum = 0.0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        with autocast(device, amp):
            logits = model(images).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        c1, c5 = topk_correct(logits, labels, (1, min(5, logits.shape[1])))
        correct1, correct5, seen = correct1 + c1, correct5 + c5, seen + labels.numel()
    if seen == 0:
        raise ValueError("evaluate: the validation loader yielded no images")
    return {"top1": correct1 / seen, "top5": correct5 / seen, "loss": loss_sum / seen, "images": seen}


def classifier_checkpoint(model: nn.Module, backbone_name: str, classes: list[str], **metadata) -> dict:
    """The checkpoint dict: tensors under 'model' (`backbone.*`, `head.*`), plain metadata beside.

    Everything in it is a tensor, str, int, float, bool, None, list or dict, so it loads with
    `torch.load(weights_only=True)`; `backbones.<name>(pretrained=path)` takes its backbone.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "model": state,
        "backbone": backbone_name,
        "num_classes": len(classes),
        "classes": list(classes),
        "input": {"color": "RGB", "scale": 1.0 / 255.0, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        **metadata,
    }


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> None:
    """Write atomically (a temporary file renamed into place)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
