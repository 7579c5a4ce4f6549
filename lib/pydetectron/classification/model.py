"""A classifier on any registered backbone: backbone -> global average pool -> linear head.

State-dict names are `backbone.<backbone's own names>` and `head.weight` / `head.bias`, so a
checkpoint's backbone loads with `pydetectron.backbones.<name>(pretrained=path)`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..backbones import Backbone, build_backbone


class ImageClassifier(nn.Module):
    """`backbone` (its coarsest map) -> global average pool -> dropout -> linear `head`."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"ImageClassifier: num_classes must be >= 2, got {num_classes}")
        if not backbone.out_channels_list:
            raise ValueError(f"ImageClassifier: {type(backbone).__name__} has an empty out_channels_list")
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(backbone.out_channels_list[-1], num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images).mean(dim=(2, 3))
        return self.head(self.dropout(features))


def build_classifier(
    backbone_name: str, num_classes: int, pretrained: str | None = None, dropout: float = 0.0
) -> ImageClassifier:
    """An ImageClassifier on the registered backbone `backbone_name` (optionally pre-loaded)."""
    return ImageClassifier(build_backbone(backbone_name, pretrained=pretrained), num_classes, dropout)
