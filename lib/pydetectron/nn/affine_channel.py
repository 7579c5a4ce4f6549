"""AffineChannel2d: Detectron's per-channel ``y = x * scale + bias``.

Detectron replaces the BatchNorm layers of an ImageNet model by this op when
fine-tuning: the statistics are folded into ``scale`` and ``bias`` and (by default)
kept frozen.
"""

import torch
import torch.nn.functional as F
from torch import nn


def check_norm_input(x: torch.Tensor, num_features: int, layer: str) -> None:
    """Raise a ValueError naming `layer` unless x is [N, num_features, H, W]."""
    if x.dim() != 4 or x.shape[1] != num_features:
        raise ValueError(
            f"{layer}({num_features}) expects an [N, {num_features}, H, W] tensor, got shape {tuple(x.shape)}"
        )


class AffineChannel2d(nn.Module):
    """Per-channel affine transform of an ``[N, C, H, W]`` tensor.

    ``weight`` is Detectron's ``*_s`` blob and ``bias`` its ``*_b`` blob. With
    ``frozen=True`` (Detectron's fine-tuning default) both are parameters with
    ``requires_grad=False``.
    """

    def __init__(self, num_features: int, frozen: bool = True):
        super().__init__()
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=not frozen)
        self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=not frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_norm_input(x, self.num_features, "AffineChannel2d")
        # Eval-mode batch norm with mean 0, variance 1 and eps 0 is exactly x * weight + bias,
        # in one fused pass (no temporary), with gradients for weight and bias when trained.
        zeros = torch.zeros_like(self.weight, requires_grad=False)
        ones = torch.ones_like(self.weight, requires_grad=False)
        return F.batch_norm(x, zeros, ones, self.weight, self.bias, False, 0.0, 0.0)

    def extra_repr(self) -> str:
        frozen = not self.weight.requires_grad
        return f"{self.num_features}, frozen={frozen}"
