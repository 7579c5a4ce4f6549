"""Focal losses (RetinaNet): `sigmoid_focal_loss` (torchvision's definition) and
`softmax_focal_loss` (Detectron's SoftmaxFocalLoss) on fused compiled kernels, and the
autograd and fake-tensor registrations of their `torch.ops.pydetectron` ops."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from ._checks import check_floating, check_same_device, check_tensor
from ._library import OPS

REDUCTIONS = ("none", "mean", "sum")


def sigmoid_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    """Focal loss of independent sigmoid classifiers, as `torchvision.ops.sigmoid_focal_loss`.

    `inputs` are logits of any shape, `targets` the same shape with 1 for the positive
    class and 0 for the negative (soft targets in [0, 1] work too). Per element:
    loss = a_t * BCE-with-logits(x, t) * (1 - p_t)^gamma with p = sigmoid(x),
    p_t = p t + (1 - p)(1 - t), a_t = alpha t + (1 - alpha)(1 - t); `alpha` < 0 means no
    alpha weighting. `reduction`: 'none' (the inputs' shape), 'mean' or 'sum' (0-dim).
    One fused kernel for the loss and one for its gradients (w.r.t. inputs and, when they
    require it, targets), stable for any logit. Mixed dtypes promote as in torchvision;
    float16 and bfloat16 compute in float32 on CPU.
    """
    op = "sigmoid_focal_loss"
    inputs = check_tensor(inputs, "inputs", op)
    targets = check_tensor(targets, "targets", op)
    check_floating(inputs, "inputs", op)
    check_floating(targets, "targets", op)
    if targets.shape != inputs.shape:
        raise ValueError(
            f"{op}: targets must have the shape of inputs {tuple(inputs.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    check_same_device(inputs, targets, ("inputs", "targets"), op)
    alpha, gamma, reduction = _focal_settings(alpha, gamma, reduction, op)
    dtype = torch.promote_types(inputs.dtype, targets.dtype)
    return OPS.sigmoid_focal_loss(inputs.to(dtype), targets.to(dtype), alpha, gamma, reduction)


def softmax_focal_loss(
    logits: Tensor,
    labels: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    """Detectron's SoftmaxFocalLoss per row of `logits` [N, C] with int64 `labels` [N].

    p = softmax(logits[i]), y = labels[i]: loss_i = -a_i (1 - p_y)^gamma log(p_y), with
    a_i = alpha for foreground (y > 0) and 1 - alpha for background (y == 0); `alpha` < 0
    means a_i = 1. Rows labelled -1 are ignored (loss 0, zero gradient); any other label
    outside [0, C) raises a ValueError. `reduction`: 'none' ([N]), 'sum', or 'mean' (the
    sum divided by the number of rows that are not ignored; NaN if there are none).
    log(p_y) comes from a log-softmax, so it stays exact for any logits (Detectron
    clamped p_y at FLT_MIN).
    """
    op = "softmax_focal_loss"
    logits = check_tensor(logits, "logits", op)
    labels = check_tensor(labels, "labels", op)
    if logits.dim() != 2:
        raise ValueError(f"{op}: logits must be a 2-D [N, C] tensor, got shape {tuple(logits.shape)}")
    check_floating(logits, "logits", op)
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"{op}: labels must be a [N] tensor with N = {logits.shape[0]} (one per row), "
            f"got shape {tuple(labels.shape)}"
        )
    if labels.dtype != torch.int64:
        raise TypeError(f"{op}: labels must be an int64 tensor, got {labels.dtype}")
    check_same_device(logits, labels, ("logits", "labels"), op)
    alpha, gamma, reduction = _focal_settings(alpha, gamma, reduction, op)
    return OPS.softmax_focal_loss(logits, labels, alpha, gamma, reduction)


def _focal_settings(alpha: object, gamma: object, reduction: object, op: str) -> tuple[float, float, str]:
    for name, value in (("alpha", alpha), ("gamma", gamma)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{op}: {name} must be a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"{op}: {name} must be a finite number, got {value!r}")
    if float(gamma) < 0:
        raise ValueError(f"{op}: gamma must be >= 0, got {gamma!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return float(alpha), float(gamma), str(reduction)


@torch.library.register_fake("pydetectron::sigmoid_focal_loss")
def _sigmoid_focal_loss_fake(inputs, targets, alpha, gamma, reduction):
    return inputs.new_empty(inputs.shape if reduction == "none" else ())


@torch.library.register_fake("pydetectron::sigmoid_focal_loss_backward")
def _sigmoid_focal_loss_backward_fake(grad, inputs, targets, alpha, gamma, reduction, targets_grad):
    return inputs.new_empty(inputs.shape), inputs.new_empty(inputs.shape if targets_grad else (0,))


@torch.library.register_fake("pydetectron::softmax_focal_loss")
def _softmax_focal_loss_fake(logits, labels, alpha, gamma, reduction):
    torch._check(logits.dim() == 2, lambda: "logits must be [N, C]")
    return logits.new_empty((logits.shape[0],) if reduction == "none" else ())


@torch.library.register_fake("pydetectron::softmax_focal_loss_backward")
def _softmax_focal_loss_backward_fake(grad, logits, labels, alpha, gamma, reduction):
    return logits.new_empty(logits.shape)


def _sigmoid_setup_context(ctx, inputs, output):
    x, t, alpha, gamma, reduction = inputs
    ctx.save_for_backward(x, t)
    ctx.settings = (alpha, gamma, reduction)


def _sigmoid_backward(ctx, grad):
    x, t = ctx.saved_tensors
    needs_inputs, needs_targets = ctx.needs_input_grad[:2]
    grad_x, grad_t = OPS.sigmoid_focal_loss_backward(grad, x, t, *ctx.settings, needs_targets)
    return (grad_x if needs_inputs else None), (grad_t if needs_targets else None), None, None, None


def _softmax_setup_context(ctx, inputs, output):
    logits, labels, alpha, gamma, reduction = inputs
    ctx.save_for_backward(logits, labels)
    ctx.settings = (alpha, gamma, reduction)


def _softmax_backward(ctx, grad):
    logits, labels = ctx.saved_tensors
    return OPS.softmax_focal_loss_backward(grad, logits, labels, *ctx.settings), None, None, None, None


def _second_derivative_unsupported(name: str):
    """Autograd formula of a backward op: a clear error instead of a silent zero."""

    def backward(ctx, *grads):
        raise RuntimeError(
            f"{name}: second derivatives are not supported (its backward kernel is not "
            "differentiable); use torchvision.ops.sigmoid_focal_loss or a PyTorch expression "
            "for double backward"
        )

    return backward


def _no_context(ctx, inputs, output):
    pass


torch.library.register_autograd(
    "pydetectron::sigmoid_focal_loss", _sigmoid_backward, setup_context=_sigmoid_setup_context
)
torch.library.register_autograd(
    "pydetectron::softmax_focal_loss", _softmax_backward, setup_context=_softmax_setup_context
)
for _name in ("sigmoid_focal_loss", "softmax_focal_loss"):
    torch.library.register_autograd(
        f"pydetectron::{_name}_backward", _second_derivative_unsupported(_name),
        setup_context=_no_context,
    )
