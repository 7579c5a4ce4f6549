"""Paste M x M RoI mask probabilities back into the image (Detectron's segm_results).

Each mask is padded by one zero pixel on every side, its box is expanded by (M + 2) / M
about its centre and truncated to integers, the padded mask is resized bilinearly to the
box's (w + 1) x (h + 1) pixels (OpenCV / `F.interpolate` half-pixel rule, borders
clamped) and thresholded. torchvision's paste_masks_in_image follows the same steps, so
one function serves both conventions. All masks are resized at once on their device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# A chunk of masks holds at most this many pasted pixels at a time.
_PIXELS_PER_CHUNK = 1 << 25


def expand_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Boxes [N, 4] scaled by `scale` about their centres."""
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=1)


def _linear_taps(size: torch.Tensor, count: int, source: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of `count` output pixels of a row resized from `source` to `size` pixels:
    the two source indices and the weight of the second (half-pixel centres, clamped)."""
    position = (torch.arange(count, device=size.device, dtype=torch.float32)[None, :] + 0.5) * (
        source / size.to(torch.float32)[:, None]
    ) - 0.5
    position = position.clamp(min=0.0, max=source - 1)
    low = position.floor().to(torch.int64)
    high = (low + 1).clamp(max=source - 1)
    return low, high, position - low.to(torch.float32)


def paste_masks(
    masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float = 0.5
) -> torch.Tensor:
    """Full-image masks [N, height, width] bool: `masks` [N, M, M] probabilities pasted into
    `boxes` [N, 4] (image pixels), kept where the resized probability is > `threshold`."""
    count = masks.shape[0]
    out = torch.zeros((count, height, width), dtype=torch.bool, device=masks.device)
    if count == 0:
        return out
    size = masks.shape[-1]
    padded = F.pad(masks.to(torch.float32), (1, 1, 1, 1))
    source = size + 2
    boxes = expand_boxes(boxes.to(torch.float32), source / size).to(torch.int64)  # truncation, as astype(int)
    widths = (boxes[:, 2] - boxes[:, 0] + 1).clamp(min=1)
    heights = (boxes[:, 3] - boxes[:, 1] + 1).clamp(min=1)
    # masks are processed in chunks of similar memory: each holds its largest box's window
    order = torch.argsort(widths * heights).tolist()
    areas = (widths * heights).tolist()
    start = 0
    while start < count:
        stop = start + 1
        while stop < count and (stop - start + 1) * areas[order[stop]] <= _PIXELS_PER_CHUNK:
            stop += 1
        index = torch.as_tensor(order[start:stop], device=masks.device)
        _paste_chunk(out, padded[index], boxes[index], widths[index], heights[index], index, threshold)
        start = stop
    return out


def _paste_chunk(out, padded, boxes, widths, heights, index, threshold) -> None:
    height, width = out.shape[-2:]
    source = padded.shape[-1]
    max_w, max_h = int(widths.max()), int(heights.max())
    x_low, x_high, x_frac = _linear_taps(widths, max_w, source)  # [n, max_w]
    y_low, y_high, y_frac = _linear_taps(heights, max_h, source)  # [n, max_h]
    rows = padded.shape[1]
    # along x, for every source row: [n, source, max_w]
    left = padded.gather(2, x_low[:, None, :].expand(-1, rows, -1))
    right = padded.gather(2, x_high[:, None, :].expand(-1, rows, -1))
    along_x = left + (right - left) * x_frac[:, None, :]
    # then along y: [n, max_h, max_w]
    top = along_x.gather(1, y_low[:, :, None].expand(-1, -1, max_w))
    bottom = along_x.gather(1, y_high[:, :, None].expand(-1, -1, max_w))
    window = (top + (bottom - top) * y_frac[:, :, None]) > threshold
    xs = boxes[:, 0, None] + torch.arange(max_w, device=boxes.device)[None, :]  # image column of each window column
    ys = boxes[:, 1, None] + torch.arange(max_h, device=boxes.device)[None, :]
    valid_x = (torch.arange(max_w, device=boxes.device)[None, :] < widths[:, None]) & (xs >= 0) & (xs < width)
    valid_y = (torch.arange(max_h, device=boxes.device)[None, :] < heights[:, None]) & (ys >= 0) & (ys < height)
    keep = window & valid_y[:, :, None] & valid_x[:, None, :]
    n_index, y_index, x_index = torch.nonzero(keep, as_tuple=True)
    out[index[n_index], ys[n_index, y_index], xs[n_index, x_index]] = True
