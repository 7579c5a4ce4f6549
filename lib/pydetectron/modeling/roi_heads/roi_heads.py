"""The RoI heads: the box branch plus the branches that run on its RoIs (mask, keypoint, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from pydetectron.nn import WeightMapping, submodule_mappings, submodule_torchvision_mappings
from pydetectron.structures.detections import Detections
from pydetectron.structures.ground_truth import GroundTruth

from ..levels import ShapeSpec, pooled_maps
from .box_branch import BoxBranch
from .branch import ROI_BRANCHES, ImageInfo, RoIBranch


def roi_branch_names(cfg) -> list[str]:
    """Registered RoI branches this config switches on, in order: 'mask' with MODEL.MASK_ON,
    'keypoint' with MODEL.KEYPOINTS_ON, then MODEL.EXTRA_ROI_BRANCHES."""
    names = (["mask"] if cfg.MODEL.MASK_ON else []) + (["keypoint"] if cfg.MODEL.KEYPOINTS_ON else [])
    return names + [str(name) for name in cfg.MODEL.EXTRA_ROI_BRANCHES]


class RoIHeads(nn.Module):
    """`box` branch and optional `branches` (name -> RoIBranch), run in order.

    Training: the box branch samples RoIs and computes its losses; every other branch
    computes its losses from that sample. Inference: the box branch detects; every other
    branch adds its outputs (masks, keypoints, ...) to the detections.
    """

    def __init__(self, box: BoxBranch, branches: Mapping[str, RoIBranch] | None = None) -> None:
        super().__init__()
        self.box = box
        self.branches = nn.ModuleDict(dict(branches or {}))

    @classmethod
    def from_cfg(cls, cfg, shapes: Mapping[str, ShapeSpec]) -> RoIHeads:
        """The box branch and every branch of `roi_branch_names(cfg)`, over the body maps of
        FPN.ROI_MIN_LEVEL..ROI_MAX_LEVEL (FPN.MULTILEVEL_ROIS) or the body's one map."""
        fpn = cfg.FPN
        multilevel = bool(fpn.FPN_ON and fpn.MULTILEVEL_ROIS)
        in_features = pooled_maps(shapes, multilevel, int(fpn.ROI_MIN_LEVEL), int(fpn.ROI_MAX_LEVEL), "the RoI heads")
        box = BoxBranch.from_cfg(cfg, shapes, in_features)
        branches: dict[str, RoIBranch] = {}
        for name in roi_branch_names(cfg):
            if name in branches or name == "box":
                raise ValueError(f"RoI branch {name!r} is listed twice (MODEL.MASK_ON/KEYPOINTS_ON/EXTRA_ROI_BRANCHES)")
            branches[name] = ROI_BRANCHES.build(name, cfg, shapes, box)
        return cls(box, branches)

    def forward(
        self,
        features: Mapping[str, torch.Tensor],
        proposals: Sequence[torch.Tensor],
        images: Sequence[ImageInfo],
        targets: Sequence[GroundTruth] | None = None,
    ) -> dict[str, torch.Tensor] | list[Detections]:
        if self.training:
            if targets is None:
                raise ValueError("the RoI heads need targets in training mode")
            losses, samples = self.box.losses(features, proposals, targets)
            for branch in self.branches.values():
                losses.update(branch.losses(features, samples, targets))
            return losses
        detections = self.box.detect(features, proposals, images)
        self.predict_branches(features, detections, images)
        return detections

    def predict_branches(
        self, features: Mapping[str, torch.Tensor], detections: Sequence[Detections], images: Sequence[ImageInfo]
    ) -> None:
        """Run every non-box branch on `detections` (whose `input_boxes` are set)."""
        for branch in self.branches.values():
            branch.predict(features, detections, images)

    def _parts(self, method: str) -> dict[str, nn.Module]:
        """The box branch and every branch that declares `method` (a user's branch may not)."""
        parts = {"box": self.box}
        parts |= {f"branches.{name}": b for name, b in self.branches.items() if hasattr(b, method)}
        return parts

    def detectron_weight_mapping(self) -> WeightMapping:
        return submodule_mappings(self._parts("detectron_weight_mapping"))

    def torchvision_weight_mapping(self) -> dict[str, str]:
        return submodule_torchvision_mappings(self._parts("torchvision_weight_mapping"))
