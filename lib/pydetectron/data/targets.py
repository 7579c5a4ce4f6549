"""Ground truth of one image while it is transformed (scale, crop) and turned into tensors."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from pydetectron.structures.ground_truth import GroundTruth
from pydetectron.structures.polygon_masks import PolygonMasks


@dataclass
class ImageTargets:
    """Numpy ground truth of one image, in the current image's pixel coordinates.

    `keypoints` is [N, K, 3] (x, y, visibility), torchvision's layout. `polygons` holds
    per annotation a list of flat [x0, y0, x1, y1, ...] float32 arrays; `bitmaps` is
    uint8 [N, h, w] at the image's (unpadded) size.
    """

    boxes: np.ndarray  # float32 [N, 4]
    gt_classes: np.ndarray  # int64 [N]
    is_crowd: np.ndarray  # bool [N]
    polygons: list[list[np.ndarray]] | None = None
    bitmaps: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    def scaled(self, scale: float) -> ImageTargets:
        """Coordinates multiplied by `scale` (bitmaps are produced at the final size)."""
        s = np.float32(scale)
        keypoints = None
        if self.keypoints is not None:
            keypoints = self.keypoints.copy()
            keypoints[:, :, :2] *= s
        polygons = None
        if self.polygons is not None:
            polygons = [[p * s for p in polys] for polys in self.polygons]
        return replace(self, boxes=self.boxes * s, polygons=polygons, keypoints=keypoints)

    def select(self, keep: np.ndarray) -> ImageTargets:
        """Only the annotations where `keep` is true."""
        keep = np.asarray(keep, dtype=bool)
        idx = np.nonzero(keep)[0]
        return ImageTargets(
            boxes=self.boxes[keep],
            gt_classes=self.gt_classes[keep],
            is_crowd=self.is_crowd[keep],
            polygons=[self.polygons[i] for i in idx] if self.polygons is not None else None,
            bitmaps=self.bitmaps[keep] if self.bitmaps is not None else None,
            keypoints=self.keypoints[keep] if self.keypoints is not None else None,
        )

    def to_tensors(self) -> GroundTruth:
        """The `GroundTruth` handed to the model (masks packed as `PolygonMasks`, or bitmaps)."""
        masks = None
        if self.bitmaps is not None:
            masks = torch.from_numpy(np.ascontiguousarray(self.bitmaps, dtype=np.uint8))
        elif self.polygons is not None:
            masks = PolygonMasks.from_lists(self.polygons)
        keypoints = None
        if self.keypoints is not None:
            keypoints = torch.from_numpy(np.ascontiguousarray(self.keypoints, np.float32))
        return GroundTruth(
            boxes=torch.from_numpy(np.ascontiguousarray(self.boxes, dtype=np.float32)),
            classes=torch.from_numpy(self.gt_classes.astype(np.int64)),
            is_crowd=torch.from_numpy(self.is_crowd.astype(bool)),
            masks=masks,
            keypoints=keypoints,
        )
