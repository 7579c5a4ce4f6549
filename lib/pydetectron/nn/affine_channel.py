"""AffineChannel2d: Detectron's per-channel ``y = x * scale + bias``.

Detectron replaces the BatchNorm layers of an ImageNet model by this op when
fine-tuning: the statistics are folded into ``scale`` and ``bias`` and (by default)
kept frozen.
"""

import torch
from torch import nn


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
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"AffineChannel2d({self.num_features}) expects an [N, {self.num_features}, H, W] "
                f"tensor, got shape {tuple(x.shape)}"
            )
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        frozen = not self.weight.requires_grad
        return f"{self.num_features}, frozen={frozen}"
