"""Detections of one image as the model returns them."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Detections:
    """boxes [D, 4] xyxy in original-image pixels, scores [D], classes [D] (1-based);
    masks [D, H, W] bool (full image) and keypoints [D, K, 3] (x, y, score) when the
    model predicts them. `input_boxes` are the same boxes in network-input pixels, where
    the RoI branches pool their features."""

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    masks: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    input_boxes: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.scores.shape[0]

    def select(self, keep: torch.Tensor) -> Detections:
        """The detections picked by an index or boolean tensor, every field alike."""

        def pick(value):
            return None if value is None else value[keep]

        return Detections(
            self.boxes[keep],
            self.scores[keep],
            self.classes[keep],
            pick(self.masks),
            pick(self.keypoints),
            pick(self.input_boxes),
        )
