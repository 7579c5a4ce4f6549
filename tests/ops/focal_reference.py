"""References of the focal losses, written from their definitions (torchvision's
sigmoid_focal_loss, Detectron's SoftmaxFocalLoss) and independent of the C++ kernels:
float64 pure-torch versions (gradients from autograd) for ordinary inputs, and 300-digit
mpmath versions (gradients by numerical differentiation) for extreme logits, where
float64 itself rounds 1 - p to 0 (300 digits hold 1 - p = e^-200 next to 1)."""

from __future__ import annotations

import mpmath
import torch
import torch.nn.functional as F
from torch import Tensor


def reduce(loss: Tensor, reduction: str, count: int | Tensor | None = None) -> Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / (loss.numel() if count is None else count)


def sigmoid_focal_reference(
    inputs: Tensor, targets: Tensor, alpha: float, gamma: float, reduction: str
) -> Tensor:
    """loss = a_t * BCE(x, t) * (1 - p_t)^gamma, all in float64; log-sigmoids keep it
    exact for large |x|."""
    x, t = inputs.double(), targets.double()
    log_p, log_q = F.logsigmoid(x), F.logsigmoid(-x)
    ce = -(t * log_p + (1 - t) * log_q)
    one_minus_p_t = log_p.exp() * (1 - t) + log_q.exp() * t
    loss = ce * one_minus_p_t**gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return reduce(loss, reduction)


def softmax_focal_reference(
    logits: Tensor, labels: Tensor, alpha: float, gamma: float, reduction: str
) -> Tensor:
    """Per row: -a (1 - p_y)^gamma log p_y in float64, label -1 ignored."""
    log_p_all = F.log_softmax(logits.double(), dim=1)
    valid = labels >= 0
    log_p = log_p_all.gather(1, labels.clamp(min=0)[:, None])[:, 0]
    one_minus_p = -torch.expm1(log_p)
    if alpha >= 0:
        foreground = (labels > 0).double()
        weight = alpha * foreground + (1 - alpha) * (1 - foreground)
    else:
        weight = torch.ones_like(log_p)
    loss = torch.where(valid, -weight * one_minus_p**gamma * log_p, 0.0)
    return reduce(loss, reduction, valid.sum())


DIGITS = 300


def sigmoid_focal_exact(x: float, t: float, alpha: float, gamma: float) -> tuple[float, float, float]:
    """(loss, d loss / dx, d loss / dt) of one element, in 300-digit arithmetic."""

    def loss(xv, tv):
        p = 1 / (1 + mpmath.exp(-xv))
        q = 1 / (1 + mpmath.exp(xv))
        ce = -(tv * mpmath.log(p) + (1 - tv) * mpmath.log(q))
        weight = alpha * tv + (1 - alpha) * (1 - tv) if alpha >= 0 else 1
        return weight * ce * (p * (1 - tv) + q * tv) ** gamma

    with mpmath.workdps(DIGITS):
        xv, tv = mpmath.mpf(x), mpmath.mpf(t)
        return (
            float(loss(xv, tv)),
            float(mpmath.diff(lambda v: loss(v, tv), xv)),
            float(mpmath.diff(lambda v: loss(xv, v), tv)),
        )


def softmax_focal_exact(row: list[float], label: int, alpha: float, gamma: float) -> tuple[float, list[float]]:
    """(loss, gradient w.r.t. the row's logits) of one row, in 300-digit arithmetic."""

    def loss(logits):
        e = [mpmath.exp(v) for v in logits]
        total = mpmath.fsum(e)
        p = e[label] / total
        one_minus_p = mpmath.fsum(e[:label] + e[label + 1 :]) / total
        weight = 1 if alpha < 0 else (alpha if label > 0 else 1 - alpha)
        return -weight * one_minus_p**gamma * mpmath.log(p)

    with mpmath.workdps(DIGITS):
        logits = [mpmath.mpf(v) for v in row]
        grads = []
        for j in range(len(logits)):
            def partial(v, j=j):
                return loss(logits[:j] + [v] + logits[j + 1 :])

            grads.append(float(mpmath.diff(partial, logits[j])))
        return float(loss(logits)), grads
