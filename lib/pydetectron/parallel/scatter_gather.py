"""Scatter a padded minibatch across devices (each chunk padded on its own) and gather outputs.

These are the pieces of `VariableSizeDataParallel`; they are plain tensor functions and run
with any devices, the CPU included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pydetectron.data.transforms import images_to_batch


def chunk_sizes(num_images: int, num_chunks: int) -> list[int]:
    """Images per chunk, as even as possible, larger chunks first (no empty chunk)."""
    if num_images < 1 or num_chunks < 1:
        raise ValueError(f"need at least one image and one chunk, got {num_images} images, {num_chunks} chunks")
    num_chunks = min(num_chunks, num_images)
    base, extra = divmod(num_images, num_chunks)
    return [base + 1 if i < extra else base for i in range(num_chunks)]


def unpad_images(images: torch.Tensor, im_info: torch.Tensor) -> list[torch.Tensor]:
    """The [3, h, w] image of each batch entry, cut out of the padding (h, w from `im_info`)."""
    if images.dim() != 4 or im_info.shape != (images.shape[0], 3):
        raise ValueError(
            f"expected images [N, 3, H, W] and im_info [N, 3], got {tuple(images.shape)} and {tuple(im_info.shape)}"
        )
    crops = []
    for image, (height, width, _) in zip(images, im_info.tolist()):
        h, w = int(round(height)), int(round(width))
        if not (0 < h <= image.shape[1] and 0 < w <= image.shape[2]):
            raise ValueError(f"im_info size ({h}, {w}) does not fit in the batch of size {tuple(image.shape[1:])}")
        crops.append(image[:, :h, :w])
    return crops


def split_padded_batch(
    images: torch.Tensor, im_info: torch.Tensor, sizes: Sequence[int], size_divisibility: int = 0
) -> list[torch.Tensor]:
    """Split a padded batch into chunks of `sizes` images, each padded only to its own largest image."""
    if sum(sizes) != images.shape[0]:
        raise ValueError(f"chunk sizes {list(sizes)} do not add up to the {images.shape[0]} images")
    crops = unpad_images(images, im_info)
    chunks, start = [], 0
    for size in sizes:
        chunks.append(images_to_batch(crops[start : start + size], size_divisibility))
        start += size
    return chunks


def scatter_minibatch(
    inputs: dict[str, Any],
    devices: Sequence[torch.device | str],
    cpu_keywords: Sequence[str] = (),
    size_divisibility: int = 0,
    images_key: str = "images",
    im_info_key: str = "im_info",
) -> list[dict[str, Any]]:
    """Keyword inputs for each device: the images re-padded per chunk; per-image tensors and
    lists split the same way; keys in `cpu_keywords` stay on the CPU; None values are kept."""
    images, im_info = inputs[images_key], inputs[im_info_key]
    sizes = chunk_sizes(images.shape[0], len(devices))
    image_chunks = split_padded_batch(images, im_info, sizes, size_divisibility)
    scattered = []
    start = 0
    for index, size in enumerate(sizes):
        device = torch.device(devices[index])
        chunk: dict[str, Any] = {}
        for key, value in inputs.items():
            if key == images_key:
                part = image_chunks[index]
            elif value is None:
                chunk[key] = None
                continue
            else:
                part = value[start : start + size]
            keep_on_cpu = key in cpu_keywords
            chunk[key] = move_to(part, torch.device("cpu") if keep_on_cpu else device)
        scattered.append(chunk)
        start += size
    return scattered


def move_to(value: Any, device: torch.device | str) -> Any:
    """Tensors (also inside lists, tuples and dicts) moved to `device`; anything else unchanged."""
    if torch.is_tensor(value) or hasattr(value, "to"):  # tensors and structures such as GroundTruth
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: move_to(item, device) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(move_to(item, device) for item in value)
    return value


def gather_outputs(outputs: Sequence[Any], device: torch.device | str, weights: Sequence[float]) -> Any:
    """Merge per-device outputs on `device`.

    Dicts (training): scalar tensors become their mean weighted by `weights` (the images of
    each chunk), so per-image averaged losses equal those of the whole batch; other tensors
    are concatenated along dim 0. Lists (inference): concatenated in device order.
    """
    if len(outputs) != len(weights):
        raise ValueError(f"{len(outputs)} outputs but {len(weights)} weights")
    first = outputs[0]
    if isinstance(first, dict):
        total = float(sum(weights))
        merged = {}
        for key in first:
            values = [output[key] for output in outputs]
            if torch.is_tensor(values[0]) and values[0].dim() == 0:
                merged[key] = sum(v.to(device) * (w / total) for v, w in zip(values, weights))
            elif torch.is_tensor(values[0]):
                merged[key] = torch.cat([v.to(device) for v in values])
            else:
                merged[key] = values
        return merged
    if isinstance(first, list | tuple):
        return [item for output in outputs for item in output]
    raise TypeError(f"cannot gather outputs of type {type(first).__name__}; expected a dict or a list")
