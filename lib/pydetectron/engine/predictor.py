"""`Predictor`: a model and its weights behind "BGR image in, detections out".

    predictor = Predictor(cfg, "model_final.pth")       # CPU or GPU (default: GPU if any)
    predictor = Predictor.from_checkpoint("Outputs/run/ckpt/model_step999.pth")   # its own config
    prediction = predictor(cv2.imread("photo.jpg"))     # or predictor("photo.jpg")
    prediction.boxes, prediction.scores, prediction.classes
    predictions = predictor.batch(list_of_images)       # batched for throughput

Images are prepared exactly as the test loader prepares them (TEST.SCALE, TEST.MAX_SIZE,
PIXEL_MEANS / PIXEL_STDS, INPUT_FORMAT, padding to FPN.COARSEST_STRIDE). Grayscale,
BGRA and 16-bit images are converted to 8-bit BGR; huge ones are shrunk before the
float conversion (see `InputTransform.shrink_huge`). With TEST.BBOX_AUG.ENABLED each
image goes through Detectron's test-time augmentation (boxes; masks / keypoints with TEST.MASK_AUG / KPS_AUG).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pydetectron.data.transforms import ImageReadError, decode_image_file
from pydetectron.engine.checkpoint import read_weights_file
from pydetectron.engine.inference import InputTransform, PreparedImage
from pydetectron.engine.test_time_augmentation import BoxAugmentation, branch_augmentations, detect_with_augmentation
from pydetectron.engine.tool_config import cfg_from_checkpoint
from pydetectron.modeling.model_builder import build_model
from pydetectron.nn import fold_norms as fold_model_norms
from pydetectron.structures.detections import Detections
from pydetectron.weights import load_weights

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Detections of one image, in its pixels, best first.

    boxes [N, 4] float32 xyxy; scores [N] float32; classes [N] int64 (contiguous,
    1-based as Detectron); masks [N, H, W] bool and keypoints [N, K, 3] (x, y, score)
    when the model predicts them, else None; image_size (H, W).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    image_size: tuple[int, int]
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep) -> Prediction:
        """The detections picked by a boolean mask or index array (e.g. `p.scores > 0.5`)."""
        return Prediction(
            self.boxes[keep],
            self.scores[keep],
            self.classes[keep],
            self.image_size,
            None if self.masks is None else self.masks[keep],
            None if self.keypoints is None else self.keypoints[keep],
        )


def as_bgr_uint8(image, name: str = "image") -> np.ndarray:
    """An HxWx3 uint8 BGR array from a grayscale, BGR, BGRA, 8- or 16-bit array.

    16-bit values are divided by 256 (as OpenCV does when it reads them as colour).
    Raises ValueError naming `name` for anything else (floats, other shapes, empty).
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array (HxWx3 BGR uint8), got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"{name}: expected HxW, HxWx3 or HxWx4 pixels, got shape {tuple(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name}: the image is empty (shape {tuple(image.shape)})")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 or uint16 pixels, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as HxWx3 uint8 BGR (grayscale, alpha and 16-bit converted).

    Raises ImageReadError naming the file when it is missing, not an image, corrupt or truncated.
    """
    path = os.fspath(path)
    image = decode_image_file(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    try:
        return as_bgr_uint8(image, name=f"image '{path}'")
    except ValueError as error:
        raise ImageReadError(str(error)) from None


def resolve_device(device=None) -> torch.device:
    """`device`, or the first GPU when torch sees one, else the CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for but torch sees no CUDA GPU")
    return device


def to_prediction(detections: Detections, original_size: tuple[int, int], box_ratio=(1.0, 1.0)) -> Prediction:
    """Model `Detections` (torch, any device) -> numpy `Prediction` in original pixels.

    `box_ratio` (x, y) maps the pixels the model saw (a shrunk huge image) to the original
    image: boxes and keypoints are scaled, masks resized (nearest neighbour).
    """
    height, width = int(original_size[0]), int(original_size[1])
    scaled = box_ratio != (1.0, 1.0)
    boxes = detections.boxes.detach().float().cpu().numpy().reshape(-1, 4)
    if scaled:
        boxes = boxes * np.asarray([box_ratio[0], box_ratio[1]] * 2, dtype=np.float32)
    masks = None
    if detections.masks is not None:
        mask_tensor = detections.masks.detach()
        if tuple(mask_tensor.shape[-2:]) != (height, width) and mask_tensor.shape[0] > 0:
            resized = torch.nn.functional.interpolate(mask_tensor[:, None].float(), (height, width), mode="nearest")
            mask_tensor = resized[:, 0] > 0.5
        masks = mask_tensor.cpu().numpy().astype(bool).reshape(-1, height, width)
    keypoints = None
    if detections.keypoints is not None:
        keypoints = detections.keypoints.detach().float().cpu().numpy().copy()
        if scaled:
            keypoints[:, :, 0] *= box_ratio[0]
            keypoints[:, :, 1] *= box_ratio[1]
    return Prediction(
        boxes=boxes.astype(np.float32),
        scores=detections.scores.detach().float().cpu().numpy().reshape(-1),
        classes=detections.classes.detach().cpu().numpy().reshape(-1).astype(np.int64),
        image_size=(height, width),
        masks=masks,
        keypoints=keypoints,
    )


class Predictor:
    """Run a detection model on BGR uint8 images.

    Args:
        cfg: the model's config (a tree from `get_cfg()` merged with its YAML, or the global one).
        weights: anything `load_weights` takes (our checkpoint or state dict, a torchvision
            detection state dict, a path to one); None keeps the initial weights.
        device: 'cpu', 'cuda', 'cuda:1', a torch.device; default a GPU when available.
        batch_size: images per forward in `batch()`.
        fold_norms: fold the frozen norms (AffineChannel, FrozenBN, eval BatchNorm) into the
            convs before them for speed (`pydetectron.nn.fold_norms`); exact to float
            rounding, and the model's parameters and state dict are left as they are.
            `folded_norms` says how many conv -> norm pairs run folded.
    """

    def __init__(self, cfg, weights=None, device=None, batch_size: int = 4, fold_norms: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model = build_model(cfg)
        self.load_report = load_weights(self.model, weights, cfg) if weights is not None else None
        self.model.to(self.device).eval()
        self.folded_norms = fold_model_norms(self.model, enabled=fold_norms)
        self.transform = InputTransform.from_cfg(cfg)
        self.box_augmentation = BoxAugmentation.from_cfg(cfg)
        self.branch_augmentation = branch_augmentations(cfg)
        self.batch_size = batch_size
        self.num_classes = int(cfg.MODEL.NUM_CLASSES)
        self.cfg = cfg

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device=None, batch_size: int = 4, **overrides
    ) -> Predictor:
        """A predictor built from the config stored in one of our checkpoints (train_net_step.py's
        `model_step<N>.pth` or `model_best.pth`), with its weights.

        `overrides` are config keys to change, e.g. `**{"TEST.SCORE_THRESH": 0.5}`. The cfg used
        is `predictor.cfg` (a tree of its own: the global `cfg` is not touched).
        """
        checkpoint = read_weights_file(path)
        cfg = cfg_from_checkpoint(checkpoint, overrides, where=os.fspath(path))
        return cls(cfg, checkpoint, device=device, batch_size=batch_size)

    @property
    def augmented(self) -> bool:
        """True when images go through test-time augmentation (TEST.BBOX_AUG / MASK_AUG / KPS_AUG)."""
        return bool(self.box_augmentation.enabled or self.branch_augmentation)

    def __call__(self, image) -> Prediction | list[Prediction]:
        """Detections of one image (array or file path); a list of images gives a list."""
        if isinstance(image, list | tuple):
            return self.batch(image)
        return self.batch([image])[0]

    def _as_image(self, image, position: int) -> np.ndarray:
        if isinstance(image, str | os.PathLike):
            return load_image(image)
        return as_bgr_uint8(image, name=f"image {position}")

    def batch(self, images: Sequence, batch_size: int | None = None) -> list[Prediction]:
        """Detections of several images, `batch_size` (default: the predictor's) per forward."""
        arrays = [self._as_image(image, i) for i, image in enumerate(images)]
        if self.augmented:
            return [self.predict_augmented(image) for image in arrays]
        size = batch_size or self.batch_size
        out: list[Prediction] = []
        for start in range(0, len(arrays), size):
            out.extend(self.predict_prepared([self.transform(a) for a in arrays[start : start + size]]))
        return out

    @torch.no_grad()
    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> list[Prediction]:
        """Detections of images already through `self.transform` (e.g. in loader workers)."""
        if not prepared:
            return []
        data, im_info = self.transform.batch(list(prepared))
        detections = self.model(
            data.to(self.device, non_blocking=True),
            im_info.to(self.device),
            original_sizes=[p.source_size for p in prepared],
        )
        return [to_prediction(d, p.original_size, p.box_ratio) for d, p in zip(detections, prepared)]

    @torch.no_grad()
    def predict_augmented(self, image: np.ndarray) -> Prediction:
        """Detections of one BGR uint8 image with test-time augmentation (TEST.BBOX_AUG, MASK_AUG, KPS_AUG)."""
        source = self.transform.shrink_huge(image)
        detections = detect_with_augmentation(
            self.model, source, self.transform, self.box_augmentation, self.branch_augmentation
        )
        ratio = (image.shape[1] / source.shape[1], image.shape[0] / source.shape[0])
        return to_prediction(detections, image.shape[:2], ratio)
