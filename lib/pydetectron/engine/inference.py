"""The test-time input transform: a BGR uint8 image to the network input.

`InputTransform` does exactly what the test loader does
(`pydetectron.data.transforms.prepare_image`, padding to FPN's coarsest stride).
Test-time augmentation lives in `engine/test_time_augmentation.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pydetectron.data.transforms import compute_scale, images_to_batch, prepare_image, to_chw_tensor

# An image needing a scale below this is first shrunk with area averaging to twice its
# network size, so a huge image never becomes a huge float32 array.
HUGE_IMAGE_SCALE = 0.25


@dataclass
class PreparedImage:
    """One network input: `tensor` [3, h, w] (unpadded), `im_info` [3] = (h, w, scale).

    The scale maps `source_size` (H, W) to (h, w); `source_size` is the original size
    unless a huge image was shrunk first, then boxes are mapped back with `box_ratio`.
    """

    tensor: torch.Tensor
    im_info: torch.Tensor
    source_size: tuple[int, int]
    original_size: tuple[int, int]

    @property
    def box_ratio(self) -> tuple[float, float]:
        """(x, y) factors from source pixels to original pixels."""
        return (
            self.original_size[1] / self.source_size[1],
            self.original_size[0] / self.source_size[0],
        )


@dataclass(frozen=True)
class InputTransform:
    """The test-time input transform (TEST.SCALE, TEST.MAX_SIZE, PIXEL_MEANS/STDS, INPUT_FORMAT)."""

    target_size: int
    max_size: int
    pixel_means: tuple[float, float, float]
    pixel_stds: tuple[float, float, float] = (1.0, 1.0, 1.0)
    input_format: str = "BGR"
    size_divisibility: int = 0
    resize: str = "detectron"

    @classmethod
    def from_cfg(cls, cfg) -> InputTransform:
        return cls(
            target_size=int(cfg.TEST.SCALE),
            max_size=int(cfg.TEST.MAX_SIZE),
            pixel_means=tuple(float(v) for v in cfg.PIXEL_MEANS),
            pixel_stds=tuple(float(v) for v in cfg.PIXEL_STDS),
            input_format=str(cfg.INPUT_FORMAT),
            size_divisibility=int(cfg.FPN.COARSEST_STRIDE) if cfg.FPN.FPN_ON else 0,
            resize=str(cfg.INPUT_RESIZE),
        )

    def shrink_huge(self, image: np.ndarray) -> np.ndarray:
        """`image`, or a copy shrunk to twice its network size when it needs a scale < 1/4."""
        height, width = image.shape[:2]
        scale = compute_scale(height, width, self.target_size, self.max_size, self.resize)
        if scale >= HUGE_IMAGE_SCALE:
            return image
        factor = 2.0 * scale
        size = (max(1, int(round(width * factor))), max(1, int(round(height * factor))))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def prepare(
        self,
        image: np.ndarray,
        flip: bool = False,
        target_size: int | None = None,
        max_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input [3, h, w], im_info [3]) of a BGR uint8 image at a (default: the test) scale."""
        data, scale = prepare_image(
            image,
            self.target_size if target_size is None else target_size,
            self.max_size if max_size is None else max_size,
            self.pixel_means,
            self.pixel_stds,
            self.input_format,
            flip=flip,
            resize=self.resize,
        )
        im_info = torch.tensor([data.shape[0], data.shape[1], scale], dtype=torch.float32)
        return to_chw_tensor(data), im_info

    def __call__(self, image: np.ndarray) -> PreparedImage:
        """The plain test view of `image` (shrunk first when huge)."""
        source = self.shrink_huge(image)
        tensor, im_info = self.prepare(source)
        return PreparedImage(tensor, im_info, tuple(source.shape[:2]), tuple(image.shape[:2]))

    def batch(self, prepared: list[PreparedImage]) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-padded [N, 3, H, W] batch and [N, 3] im_info."""
        data = images_to_batch([p.tensor for p in prepared], self.size_divisibility)
        return data, torch.stack([p.im_info for p in prepared])
