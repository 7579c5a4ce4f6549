"""The interface of an RoI branch, and the registry that finds branches by name.

The RoI heads are a box branch plus any number of branches that work on the box
branch's RoIs: Detectron's mask and keypoint heads, or a user's own. A branch is one
registered class:

    @ROI_BRANCHES.register("my_branch")
    class MyBranch(RoIBranch):
        @classmethod
        def from_cfg(cls, cfg, input_shape, box_branch): ...
        def losses(self, features, samples, targets): ...      # training: {'loss_*': ...}
        def predict(self, features, detections, images): ...   # inference: fill detections

and a config that lists it in MODEL.EXTRA_ROI_BRANCHES (mask and keypoint branches are
switched on by MODEL.MASK_ON and MODEL.KEYPOINTS_ON).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn

from pydetectron.nn import WeightMapping, submodule_mappings, submodule_torchvision_mappings
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth

from ..levels import ShapeSpec
from ..registry import Registry
from .box_sampling import SampledRoIs

ROI_BRANCHES = Registry("RoI branch")


class ImageInfo(NamedTuple):
    """One image of a batch: network-input size (unpadded), its scale, and the original size."""

    height: float
    width: float
    scale: float
    original_height: int
    original_width: int


class RoIBranch(nn.Module):
    """Base class of the branches that run on the box branch's RoIs."""

    # feature maps (names from the body's output_shape) the branch pools from
    in_features: list[str]

    @classmethod
    def from_cfg(cls, cfg, input_shape: Mapping[str, ShapeSpec], box_branch: nn.Module) -> RoIBranch:
        raise NotImplementedError(f"{cls.__name__} must implement from_cfg")

    def losses(
        self, features: Mapping[str, torch.Tensor], samples: SampledRoIs, targets: Sequence[GroundTruth]
    ) -> dict[str, torch.Tensor]:
        """Training losses from the box branch's sampled RoIs (input pixels) and the targets."""
        raise NotImplementedError(f"{type(self).__name__} must implement losses")

    def predict(
        self, features: Mapping[str, torch.Tensor], detections: Sequence[Detections], images: Sequence[ImageInfo]
    ) -> None:
        """Add this branch's outputs to each image's detections (in place)."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict")


class PooledHeadBranch(RoIBranch):
    """A branch that pools RoI features from `in_features`, runs `head` then `outputs` on them
    (the mask and keypoint branches); it declares the weight names of both."""

    def __init__(self, in_features: Sequence[str], pooler: nn.Module, head: nn.Module, outputs: nn.Module) -> None:
        super().__init__()
        self.in_features = list(in_features)
        self.pooler = pooler
        self.head = head
        self.outputs = outputs

    def head_outputs(self, features: Mapping[str, torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """`outputs(head(pooled))` of RoIs [R, 5] (batch index, box in input pixels)."""
        return self.outputs(self.head(self.pooler([features[name] for name in self.in_features], rois)))

    def detectron_weight_mapping(self) -> WeightMapping:
        return submodule_mappings({"head": self.head, "outputs": self.outputs})

    def torchvision_weight_mapping(self) -> dict[str, str]:
        return submodule_torchvision_mappings({"head": self.head, "outputs": self.outputs})
