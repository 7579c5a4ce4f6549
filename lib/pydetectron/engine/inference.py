"""Test-time inference of a Generalized R-CNN on one image: input transform and box augmentation.

`InputTransform` turns a BGR uint8 image into the network input exactly as the test
loader does (`pydetectron.data.transforms.prepare_image`, padding to FPN's coarsest
stride). `detect_with_box_augmentation` is Detectron's `im_detect_bbox_aug`: the box
head's class scores and class-specific boxes of several views of the image (horizontal
flip, extra scales, aspect ratios, each optionally flipped, the plain view last) are
mapped back to the image, combined (UNION stacks them; AVG averages them; ID keeps the
plain view's), then go through the model's own post-processing (NMS or Soft-NMS, box
voting, limits). With AVG / ID every view scores the plain view's proposals, as
Detectron does with precomputed proposals; with UNION each view has its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pydetectron.data.transforms import compute_scale, images_to_batch, prepare_image, to_chw_tensor
from pydetectron.modeling.roi_heads.branch import ImageInfo
from pydetectron.structures.boxes import flip_boxes
from pydetectron.structures.detections import Detections

# An image needing a scale below this is first shrunk with area averaging to twice its
# network size, so a huge image never becomes a huge float32 array.
HUGE_IMAGE_SCALE = 0.25
HEURISTICS = ("ID", "AVG", "UNION")


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


@dataclass(frozen=True)
class View:
    """One test-time view: shorter side `target_size` (long side <= `max_size`), flipped
    horizontally or not, width stretched by `aspect_ratio`."""

    target_size: int
    max_size: int
    flip: bool = False
    aspect_ratio: float = 1.0


@dataclass(frozen=True)
class BoxAugmentation:
    """TEST.BBOX_AUG: which views to score and how to combine them."""

    enabled: bool = False
    score_heur: str = "UNION"
    coord_heur: str = "UNION"
    h_flip: bool = False
    scales: tuple[int, ...] = ()
    max_size: int = 4000
    scale_h_flip: bool = False
    aspect_ratios: tuple[float, ...] = ()
    aspect_ratio_h_flip: bool = False

    def __post_init__(self) -> None:
        for key, value in (("SCORE_HEUR", self.score_heur), ("COORD_HEUR", self.coord_heur)):
            if value not in HEURISTICS:
                raise ValueError(f"TEST.BBOX_AUG.{key} must be one of {HEURISTICS}, got {value!r}")
        if (self.score_heur == "UNION") != (self.coord_heur == "UNION"):
            raise ValueError(
                "TEST.BBOX_AUG.SCORE_HEUR and COORD_HEUR must both be 'UNION' or both not "
                f"(got {self.score_heur!r} and {self.coord_heur!r})"
            )

    @classmethod
    def from_cfg(cls, cfg) -> BoxAugmentation:
        aug = cfg.TEST.BBOX_AUG
        if aug.ENABLED and aug.SCALE_SIZE_DEP:
            raise NotImplementedError("TEST.BBOX_AUG.SCALE_SIZE_DEP (size-dependent scales) is not implemented")
        return cls(
            enabled=bool(aug.ENABLED),
            score_heur=str(aug.SCORE_HEUR),
            coord_heur=str(aug.COORD_HEUR),
            h_flip=bool(aug.H_FLIP),
            scales=tuple(int(s) for s in aug.SCALES),
            max_size=int(aug.MAX_SIZE),
            scale_h_flip=bool(aug.SCALE_H_FLIP),
            aspect_ratios=tuple(float(a) for a in aug.ASPECT_RATIOS),
            aspect_ratio_h_flip=bool(aug.ASPECT_RATIO_H_FLIP),
        )

    def views(self, target_size: int, max_size: int) -> list[View]:
        """The views in Detectron's order; the last one is the plain view."""
        views = []
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
    """(features, im_info row, view image size) of one view of BGR `image`."""
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


def _combine(values: list[torch.Tensor], heuristic: str) -> torch.Tensor:
    if heuristic == "ID":
        return values[-1]
    if heuristic == "AVG":
        return torch.stack(values).mean(dim=0)
    return torch.cat(values)


@torch.no_grad()
def detect_with_box_augmentation(
    model, image: np.ndarray, transform: InputTransform, augmentation: BoxAugmentation
) -> Detections:
    """Detections of BGR `image` (in its pixels) from the combined views of `augmentation`."""
    views = augmentation.views(transform.target_size, transform.max_size)
    plain = views[-1]
    if augmentation.score_heur == "UNION":
        scored = [score_view(model, image, transform, view) for view in views]
    else:
        identity = score_view(model, image, transform, plain)
        scored = [score_view(model, image, transform, view, identity.proposals) for view in views[:-1]]
        scored.append(identity)
    probs = _combine([s.probs for s in scored], augmentation.score_heur)
    boxes = _combine([s.boxes for s in scored], augmentation.coord_heur)
    detections = model.roi_heads.box.postprocessor.single_image(probs, boxes)
    if model.roi_heads.branches:  # masks / keypoints of the combined boxes, on the plain view
        data, im_info, _ = _view_input(model, image, transform, plain)
        info = ImageInfo(float(im_info[0]), float(im_info[1]), float(im_info[2]), *image.shape[:2])
        detections.input_boxes = detections.boxes * info.scale
        model.roi_heads.predict_branches(model.body(data), [detections], [info])
    return detections
