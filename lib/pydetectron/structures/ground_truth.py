"""Ground truth of one training image, as the model receives it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from pydetectron.structures.polygon_masks import PolygonMasks


@dataclass
class GroundTruth:
    """The objects of one image in network-input pixels.

    boxes [G, 4] float32 xyxy; classes [G] int64 (contiguous, 1-based); is_crowd [G] bool;
    masks: `PolygonMasks` or a uint8 [G, H, W] bitmap tensor (None without masks);
    keypoints [G, K, 3] float32 (x, y, visibility) or None.
    """

    boxes: torch.Tensor
    classes: torch.Tensor
    is_crowd: torch.Tensor | None = None
    masks: PolygonMasks | torch.Tensor | None = None
    keypoints: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"GroundTruth.boxes must be [G, 4], got {tuple(self.boxes.shape)}")
        count = self.boxes.shape[0]
        if self.is_crowd is None:
            self.is_crowd = torch.zeros(count, dtype=torch.bool, device=self.boxes.device)
        for name in ("classes", "is_crowd", "masks", "keypoints"):
            value = getattr(self, name)
            if value is not None and len(value) != count:
                raise ValueError(f"GroundTruth.{name} has {len(value)} entries for {count} boxes")

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def to(self, device, non_blocking: bool = False) -> GroundTruth:
        """A copy with every tensor on `device` (boxes float32, classes int64, crowd bool)."""

        def move(value):
            return None if value is None else value.to(device, non_blocking=non_blocking)

        return replace(
            self,
            boxes=self.boxes.to(device, dtype=torch.float32, non_blocking=non_blocking),
            classes=self.classes.to(device, dtype=torch.int64, non_blocking=non_blocking),
            is_crowd=self.is_crowd.to(device, dtype=torch.bool, non_blocking=non_blocking),
            masks=move(self.masks),
            keypoints=move(self.keypoints),
        )
