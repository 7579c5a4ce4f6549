"""Image reading and the network-input transform (Detectron's `prep_im_for_blob`).

Shared by the training minibatch, the test loader and the predictor: read BGR with
OpenCV, optionally flip, switch to RGB when asked, subtract the pixel means (and
divide by the stds), resize so the short side is `target_size` unless that makes the
long side exceed `max_size`, and zero-pad a batch to a multiple of a stride.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch


class ImageReadError(OSError):
    """An image file is missing, unreadable, truncated, or not the size its annotations say."""


_JPEG_START = b"\xff\xd8"
_JPEG_SCAN = b"\xff\xda"  # start of scan; 0xFF bytes inside a scan are stuffed, so it cannot occur there
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND"


def truncation_reason(data: bytes) -> str:
    """Why an encoded JPEG / PNG is incomplete ('' when it looks complete, or for other formats).

    OpenCV decodes a truncated JPEG without an error (libjpeg only prints "Premature end of
    JPEG file" and fills the rest grey), so the end markers are checked here: a JPEG needs an
    end-of-image marker after its last scan, a PNG its IEND chunk. Bytes after the end
    marker are allowed (some cameras append data).
    """
    if data.startswith(_JPEG_START):
        last_scan = data.rfind(_JPEG_SCAN)
        if last_scan < 0 or data.rfind(_JPEG_END) < last_scan:
            return "truncated JPEG: no end-of-image marker after the image data"
    elif data.startswith(_PNG_START) and data.rfind(_PNG_END) < 0:
        return "truncated PNG: no IEND chunk"
    return ""


def decode_image_file(path: str | os.PathLike, flags: int) -> np.ndarray:
    """The pixels of an image file decoded by OpenCV with `flags`.

    Raises ImageReadError naming the file when it is missing, empty, truncated (see
    `truncation_reason`) or not an image OpenCV can decode.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError(f"could not read image '{path}' (file not found)") from None
    except OSError as error:
        raise ImageReadError(f"could not read image '{path}' ({error.strerror or error})") from None
    if not data:
        raise ImageReadError(f"could not read image '{path}' (empty file)")
    reason = truncation_reason(data)
    if reason:
        raise ImageReadError(f"could not read image '{path}' ({reason})")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise ImageReadError(f"could not read image '{path}' (unreadable, corrupt or not an image)")
    return image


def read_image(path: str, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 BGR image; raises ImageReadError naming `path` (see `decode_image_file`).

    EXIF orientation is ignored so pixels line up with the annotation coordinates.
    """
    image = decode_image_file(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if expected_hw is not None and tuple(image.shape[:2]) != tuple(expected_hw):
        raise ImageReadError(
            f"image '{path}' is {image.shape[0]}x{image.shape[1]} (HxW) but its annotations "
            f"say {expected_hw[0]}x{expected_hw[1]}"
        )
    return image


# How an image is resized to the network's scale:
# 'detectron': OpenCV bilinear resize of the normalised image to round(size * scale), the
#   scale capped when the rounded long side exceeds the max size (Detectron's prep_im_for_blob);
# 'torchvision': torch bilinear interpolation (half-pixel, no antialias) to floor(size * scale)
#   with scale = min(target / short, max / long) (GeneralizedRCNNTransform).
RESIZE_CONVENTIONS = ("detectron", "torchvision")


def compute_scale(
    height: int, width: int, target_size: float, max_size: float, convention: str = "detectron"
) -> float:
    """Scale making the short side `target_size`, capped so the long side <= `max_size`."""
    short, long = min(height, width), max(height, width)
    if convention == "torchvision":
        return min(float(target_size) / short, float(max_size) / long)
    scale = float(target_size) / float(short)
    if round(scale * long) > max_size:  # Detectron compares the rounded long side
        scale = float(max_size) / float(long)
    return scale


def _resize(image: np.ndarray, scale: float, convention: str) -> np.ndarray:
    """Resize a float32 HxWx3 array by `scale` with the given convention's interpolation."""
    if convention == "torchvision":
        chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        out = torch.nn.functional.interpolate(
            chw, scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )
        return out[0].permute(1, 2, 0).numpy()
    return cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)


def prepare_image(
    image: np.ndarray,
    target_size: float,
    max_size: float,
    pixel_means: Sequence[float],
    pixel_stds: Sequence[float] = (1.0, 1.0, 1.0),
    input_format: str = "BGR",
    flip: bool = False,
    resize: str = "detectron",
) -> tuple[np.ndarray, float]:
    """BGR uint8 image -> (normalised float32 HxWx3 in `input_format` order, scale).

    `pixel_means`/`pixel_stds` are in 0-255 units and in the `input_format` channel order;
    `resize` is one of RESIZE_CONVENTIONS.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {tuple(image.shape)}")
    if input_format not in ("BGR", "RGB"):
        raise ValueError(f"input_format must be 'BGR' or 'RGB', got {input_format!r}")
    if resize not in RESIZE_CONVENTIONS:
        raise ValueError(f"resize convention must be one of {RESIZE_CONVENTIONS}, got {resize!r}")
    if flip:
        image = image[:, ::-1]
    if input_format == "RGB":
        image = image[:, :, ::-1]
    means = np.asarray(pixel_means, dtype=np.float32).reshape(1, 1, 3)
    stds = np.asarray(pixel_stds, dtype=np.float32).reshape(1, 1, 3)
    out = image.astype(np.float32)
    out -= means
    if not np.all(stds == 1.0):
        out *= 1.0 / stds
    scale = compute_scale(image.shape[0], image.shape[1], target_size, max_size, resize)
    if scale != 1.0:
        out = _resize(out, scale, resize)
    return out, scale


def padded_size(height: int, width: int, size_divisibility: int) -> tuple[int, int]:
    """(H, W) rounded up to a multiple of `size_divisibility` (unchanged when <= 0)."""
    if size_divisibility <= 0:
        return height, width
    stride = size_divisibility
    return int(math.ceil(height / stride) * stride), int(math.ceil(width / stride) * stride)


def _empty_batch(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialised tensor; in a loader worker it is allocated in shared memory directly,
    as torch's default_collate does, so handing it to the main process copies nothing."""
    if torch.utils.data.get_worker_info() is not None and like.device.type == "cpu":
        numel = 1
        for size in shape:
            numel *= size
        storage = like.untyped_storage()._new_shared(numel * like.element_size())
        return like.new_empty(0).set_(storage).view(shape)
    return like.new_empty(shape)


def images_to_batch(images: Sequence[torch.Tensor], size_divisibility: int = 0) -> torch.Tensor:
    """Stack [3, h_i, w_i] tensors into a zero-padded [N, 3, H, W] contiguous batch.

    H and W are the largest sizes rounded up to a multiple of `size_divisibility`
    (Detectron pads to FPN.COARSEST_STRIDE when FPN is on).
    """
    if not images:
        raise ValueError("images_to_batch needs at least one image")
    height = max(int(im.shape[1]) for im in images)
    width = max(int(im.shape[2]) for im in images)
    height, width = padded_size(height, width, size_divisibility)
    batch = _empty_batch(images[0], (len(images), images[0].shape[0], height, width))
    # CPU copies go through numpy: single-threaded, so a loader never competes with the
    # model for torch's intra-op threads (which made it 4x slower on a busy machine).
    on_cpu = batch.device.type == "cpu" and not any(im.requires_grad for im in images)
    target = batch.numpy() if on_cpu else batch
    for i, im in enumerate(images):
        h, w = int(im.shape[1]), int(im.shape[2])
        if on_cpu:
            target[i, :, :h, :w] = im.numpy()
        else:
            target[i, :, :h, :w].copy_(im)
        target[i, :, h:, :] = 0  # only the padding is zeroed: one pass over the memory
        target[i, :, :h, w:] = 0
    return batch


def to_chw_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 array -> [3, H, W] tensor view (channels-last memory, no copy).

    The copy into the padded batch does the layout change in the same pass.
    """
    return torch.from_numpy(image).permute(2, 0, 1)
