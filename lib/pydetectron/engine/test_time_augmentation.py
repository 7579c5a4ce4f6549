"""Detectron's test-time augmentation of one image: boxes, masks and keypoints.

Each TEST.*_AUG section names views of the image (horizontal flip, extra scales, aspect
ratios, each optionally flipped, plus the plain TEST.SCALE view).

Boxes (`im_detect_bbox_aug`): the box head's class scores and class-specific boxes of
every view are mapped back to the image and combined (UNION stacks them; AVG averages
them; ID keeps the plain view's), then go through the model's own post-processing (NMS
or Soft-NMS, box voting, limits). With AVG / ID every view scores the plain view's
proposals, as Detectron does with precomputed proposals; with UNION each view has its own.

Masks and keypoints (`im_detect_mask_aug`, `im_detect_keypoints_aug`): the final boxes
are carried into every view, each branch's per-box outputs (soft masks; heatmap logits)
are mapped back (flipped views unflipped, keypoints' left/right swapped) and combined by
the section's HEUR, then pasted / decoded once. A branch whose section is off runs on the
plain view only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pydetectron.data.dataset_info import keypoint_flip_pairs
from pydetectron.data.transforms import images_to_batch
from pydetectron.modeling.roi_heads.branch import ImageInfo
from pydetectron.structures.boxes import flip_boxes
from pydetectron.structures.detections import Detections
from pydetectron.utils.class_names import COCO_KEYPOINT_NAMES

from .inference import InputTransform

BOX_HEURISTICS = ("ID", "AVG", "UNION")
# The RoI branches that have a TEST.*_AUG section, and the heuristics each section takes.
BRANCH_SECTIONS = {"mask": "MASK_AUG", "keypoint": "KPS_AUG"}
BRANCH_HEURISTICS = {"MASK_AUG": ("SOFT_AVG", "SOFT_MAX", "LOGIT_AVG"), "KPS_AUG": ("HM_AVG", "HM_MAX")}
# Detectron assumes COCO's person keypoints when a model has 17.
COCO_KEYPOINT_FLIP_PAIRS = tuple(keypoint_flip_pairs(list(COCO_KEYPOINT_NAMES)))


@dataclass(frozen=True)
class View:
    """One test-time view: shorter side `target_size` (long side <= `max_size`), flipped
    horizontally or not, width stretched by `aspect_ratio`."""

    target_size: int
    max_size: int
    flip: bool = False
    aspect_ratio: float = 1.0


@dataclass(frozen=True)
class ViewAugmentation:
    """The views one TEST.*_AUG section asks for (BBOX_AUG, MASK_AUG and KPS_AUG share them)."""

    enabled: bool = False
    h_flip: bool = False
    scales: tuple[int, ...] = ()
    max_size: int = 4000
    scale_h_flip: bool = False
    aspect_ratios: tuple[float, ...] = ()
    aspect_ratio_h_flip: bool = False

    @staticmethod
    def view_settings(section, name: str) -> dict:
        """The shared keys of config `section` (TEST.<name>) as constructor arguments."""
        if section.ENABLED and section.SCALE_SIZE_DEP:
            raise ValueError(f"TEST.{name}.SCALE_SIZE_DEP: size-dependent test-time scales are not supported yet")
        return {
            "enabled": bool(section.ENABLED),
            "h_flip": bool(section.H_FLIP),
            "scales": tuple(int(s) for s in section.SCALES),
            "max_size": int(section.MAX_SIZE),
            "scale_h_flip": bool(section.SCALE_H_FLIP),
            "aspect_ratios": tuple(float(a) for a in section.ASPECT_RATIOS),
            "aspect_ratio_h_flip": bool(section.ASPECT_RATIO_H_FLIP),
        }

    def views(self, target_size: int, max_size: int) -> list[View]:
        """The views in Detectron's order; the last one is the plain view (the only one when off)."""
        views = []
        if self.enabled:
            if self.h_flip:
                views.append(View(target_size, max_size, flip=True))
            for scale in self.scales:
                views.append(View(scale, self.max_size))
                if self.scale_h_flip:
                    views.append(View(scale, self.max_size, flip=True))
            for ratio in self.aspect_ratios:
                views.append(View(target_size, max_size, aspect_ratio=ratio))
                if self.aspect_ratio_h_flip:
                    views.append(View(target_size, max_size, flip=True, aspect_ratio=ratio))
        views.append(View(target_size, max_size))
        return views


@dataclass(frozen=True)
class BoxAugmentation(ViewAugmentation):
    """TEST.BBOX_AUG: the views to score and how to combine their scores and boxes."""

    score_heur: str = "UNION"
    coord_heur: str = "UNION"

    def __post_init__(self) -> None:
        for key, value in (("SCORE_HEUR", self.score_heur), ("COORD_HEUR", self.coord_heur)):
            if value not in BOX_HEURISTICS:
                raise ValueError(f"TEST.BBOX_AUG.{key} must be one of {BOX_HEURISTICS}, got {value!r}")
        if (self.score_heur == "UNION") != (self.coord_heur == "UNION"):
            raise ValueError(
                "TEST.BBOX_AUG.SCORE_HEUR and COORD_HEUR must both be 'UNION' or both not "
                f"(got {self.score_heur!r} and {self.coord_heur!r})"
            )

    @classmethod
    def from_cfg(cls, cfg) -> BoxAugmentation:
        aug = cfg.TEST.BBOX_AUG
        return cls(
            **cls.view_settings(aug, "BBOX_AUG"), score_heur=str(aug.SCORE_HEUR), coord_heur=str(aug.COORD_HEUR)
        )


@dataclass(frozen=True)
class BranchAugmentation(ViewAugmentation):
    """TEST.MASK_AUG / TEST.KPS_AUG: the views a branch runs on and how its outputs combine."""

    section: str = "MASK_AUG"
    heur: str = "SOFT_AVG"

    def __post_init__(self) -> None:
        allowed = BRANCH_HEURISTICS.get(self.section)
        if allowed is None:
            raise ValueError(f"no test-time augmentation section TEST.{self.section}")
        if self.heur not in allowed:
            raise ValueError(f"TEST.{self.section}.HEUR must be one of {allowed}, got {self.heur!r}")

    @classmethod
    def from_cfg(cls, cfg, section: str) -> BranchAugmentation:
        aug = cfg.TEST[section]
        return cls(**cls.view_settings(aug, section), section=section, heur=str(aug.HEUR))

    def combine(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """One output from every view's (Detectron's numpy heuristics, in torch)."""
        stacked = torch.stack(list(outputs))
        if self.heur in ("SOFT_AVG", "HM_AVG"):
            return stacked.mean(dim=0)
        if self.heur in ("SOFT_MAX", "HM_MAX"):
            return stacked.amax(dim=0)
        logits = -torch.log((1.0 - stacked) / stacked.clamp(min=1e-20))  # LOGIT_AVG
        return torch.sigmoid(logits.mean(dim=0))


def branch_augmentations(cfg) -> dict[str, BranchAugmentation]:
    """The enabled TEST.MASK_AUG / TEST.KPS_AUG sections, keyed by RoI branch name."""
    augs = {name: BranchAugmentation.from_cfg(cfg, section) for name, section in BRANCH_SECTIONS.items()}
    return {name: aug for name, aug in augs.items() if aug.enabled}


@dataclass
class ViewScores:
    """Box-head outputs of one view, in the coordinates of the unaugmented image.

    probs [R, C] class probabilities; boxes [R, 4C] class-specific boxes (clipped);
    proposals [R, 4] the RoIs that were scored.
    """

    probs: torch.Tensor
    boxes: torch.Tensor
    proposals: torch.Tensor


def _stretch_x(boxes: torch.Tensor, ratio: float) -> torch.Tensor:
    out = boxes.clone()
    out[:, 0::2] = boxes[:, 0::2] * ratio
    return out


def _view_input(model, image: np.ndarray, transform: InputTransform, view: View):
    """(network input, im_info row, view image size) of one view of BGR `image`."""
    stretched = image
    if view.aspect_ratio != 1.0:
        stretched = cv2.resize(image, None, fx=view.aspect_ratio, fy=1.0, interpolation=cv2.INTER_LINEAR)
    tensor, im_info = transform.prepare(stretched, view.flip, view.target_size, view.max_size)
    device = next(model.parameters()).device
    data = images_to_batch([tensor], transform.size_divisibility).to(device)
    return data, im_info.to(device), stretched.shape[:2]


def score_view(
    model,
    image: np.ndarray,
    transform: InputTransform,
    view: View,
    proposals: torch.Tensor | None = None,
) -> ViewScores:
    """Box-branch outputs for one view of BGR `image`, mapped back to `image`'s pixels.

    `proposals` [R, 4] in `image` pixels are scored instead of the view's own RPN
    proposals when given. The box branch's own `class_boxes` does the scoring.
    """
    if model.rpn_only:
        raise ValueError("box test-time augmentation needs a box head; this model is RPN-only")
    box = model.roi_heads.box
    data, im_info, (height, width) = _view_input(model, image, transform, view)
    scale = float(im_info[2])
    features = model.body(data)
    if proposals is None:
        rpn_maps = [features[name] for name in model.rpn_in_features]
        rois = model.rpn(rpn_maps, im_info[None], image_size=tuple(data.shape[-2:]))[0][0]
    else:
        rois = _stretch_x(proposals.to(device=data.device, dtype=torch.float32), view.aspect_ratio)
        if view.flip:
            rois = flip_boxes(rois, width, box.plus_one)
        rois = rois * scale
    info = ImageInfo(float(im_info[0]), float(im_info[1]), scale, height, width)
    probs, boxes = box.class_boxes(features, [rois], [info])[0]
    view_rois = rois / scale
    if view.flip:
        boxes = flip_boxes(boxes, width, box.plus_one)
        view_rois = flip_boxes(view_rois, width, box.plus_one)
    if view.aspect_ratio != 1.0:
        boxes = _stretch_x(boxes, 1.0 / view.aspect_ratio)
        view_rois = _stretch_x(view_rois, 1.0 / view.aspect_ratio)
    return ViewScores(probs, boxes, view_rois)


def branch_view_outputs(
    model, image: np.ndarray, transform: InputTransform, view: View, detections: Detections, names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Per-box outputs of the RoI branches `names` on one view, for `detections` in `image` pixels.

    Outputs of a flipped view come back unflipped (keypoints with left/right swapped).
    """
    box = model.roi_heads.box
    data, im_info, (height, width) = _view_input(model, image, transform, view)
    boxes = _stretch_x(detections.boxes, view.aspect_ratio)
    if view.flip:
        boxes = flip_boxes(boxes, width, box.plus_one)
    in_view = Detections(boxes=boxes, scores=detections.scores, classes=detections.classes)
    in_view.input_boxes = boxes * float(im_info[2])
    features = model.body(data)
    outputs = {}
    for name in names:
        branch = model.roi_heads.branches[name]
        out = branch.roi_outputs(features, [in_view])[0]
        if view.flip:
            out = branch.flip_roi_outputs(out) if name == "mask" else branch.flip_roi_outputs(out, _flip_pairs(out))
        outputs[name] = out
    return outputs


def _flip_pairs(heatmaps: torch.Tensor) -> tuple[tuple[int, int], ...]:
    if heatmaps.shape[1] != len(COCO_KEYPOINT_NAMES):
        raise ValueError(
            f"TEST.KPS_AUG flips need the keypoints' left/right pairs; they are known for COCO's "
            f"{len(COCO_KEYPOINT_NAMES)} person keypoints, this model has {heatmaps.shape[1]}: "
            "set TEST.KPS_AUG.H_FLIP and SCALE_H_FLIP / ASPECT_RATIO_H_FLIP to False"
        )
    return COCO_KEYPOINT_FLIP_PAIRS


def _combine_boxes(values: list[torch.Tensor], heuristic: str) -> torch.Tensor:
    if heuristic == "ID":
        return values[-1]
    if heuristic == "AVG":
        return torch.stack(values).mean(dim=0)
    return torch.cat(values)


@torch.no_grad()
def detect_with_augmentation(
    model,
    image: np.ndarray,
    transform: InputTransform,
    box_augmentation: BoxAugmentation,
    branch_augmentation: Mapping[str, BranchAugmentation] | None = None,
) -> Detections:
    """Detections of BGR `image` (in its pixels) from the combined views of each TEST.*_AUG section."""
    views = box_augmentation.views(transform.target_size, transform.max_size)
    plain = views[-1]
    if box_augmentation.score_heur == "UNION":
        scored = [score_view(model, image, transform, view) for view in views]
    else:
        identity = score_view(model, image, transform, plain)
        scored = [score_view(model, image, transform, view, identity.proposals) for view in views[:-1]]
        scored.append(identity)
    probs = _combine_boxes([s.probs for s in scored], box_augmentation.score_heur)
    boxes = _combine_boxes([s.boxes for s in scored], box_augmentation.coord_heur)
    detections = model.roi_heads.box.postprocessor.single_image(probs, boxes)
    if not model.roi_heads.branches:
        return detections

    data, im_info, _ = _view_input(model, image, transform, plain)
    info = ImageInfo(float(im_info[0]), float(im_info[1]), float(im_info[2]), *image.shape[:2])
    detections.input_boxes = detections.boxes * info.scale
    augmented = {name: aug for name, aug in (branch_augmentation or {}).items() if name in model.roi_heads.branches}
    features = model.body(data)
    result = [detections]
    for name, branch in model.roi_heads.branches.items():
        if name not in augmented:
            branch.predict(features, result, [info])
    for name, aug in augmented.items():  # Detectron: the plain view first, then the others
        branch = model.roi_heads.branches[name]
        current = result[0]  # an earlier branch may have dropped detections (keypoints' OKS-NMS)
        outputs = branch.roi_outputs(features, result)
        for view in aug.views(transform.target_size, transform.max_size)[:-1]:
            outputs.append(branch_view_outputs(model, image, transform, view, current, [name])[name])
        branch.finish(result, [aug.combine(outputs)], [info])
    return result[0]
