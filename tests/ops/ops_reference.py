"""Float64 pure-torch references of the ops, written from the published definitions
(Fast R-CNN RoIPool, Mask R-CNN RoIAlign, greedy NMS) and independent of the C++
kernels. Slow and simple: meant for small test inputs only. Gradients of the RoI ops
come from autograd through these functions."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def iou(a: list[float], b: list[float], plus_one: bool) -> float:
    one = 1.0 if plus_one else 0.0
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + one)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + one)
    inter = w * h
    area_a = (a[2] - a[0] + one) * (a[3] - a[1] + one)
    area_b = (b[2] - b[0] + one) * (b[3] - b[1] + one)
    return inter / (area_a + area_b - inter)


def nms_reference(boxes: Tensor, scores: Tensor, threshold: float, plus_one: bool = False) -> Tensor:
    """Greedy NMS, highest score first (ties: lower index first): a box is dropped when
    its IoU with a kept box is > threshold (a NaN IoU drops nothing)."""
    box_list = boxes.double().tolist()
    score_list = scores.double().tolist()
    order = sorted(range(len(box_list)), key=lambda i: (-score_list[i], i))
    keep: list[int] = []
    for i in order:
        if not any(iou(box_list[k], box_list[i], plus_one) > threshold for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms_reference(
    boxes: Tensor, scores: Tensor, idxs: Tensor, threshold: float, plus_one: bool = False
) -> Tensor:
    """NMS per class, then all kept boxes sorted by decreasing score."""
    kept: list[int] = []
    for c in idxs.unique().tolist():
        members = torch.nonzero(idxs == c).flatten()
        kept += members[nms_reference(boxes[members], scores[members], threshold, plus_one)].tolist()
    score_list = scores.double().tolist()
    return torch.tensor(sorted(kept, key=lambda i: (-score_list[i], i)), dtype=torch.int64)


def bilinear_points(plane: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """RoIAlign's bilinear sampling of plane [C, H, W] at points y, x (same shape):
    zero outside [-1, size], edge-clamped inside. Returns [C, *y.shape]."""
    height, width = plane.shape[-2:]
    inside = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y0 = y.floor().long().clamp(max=height - 1)
    x0 = x.floor().long().clamp(max=width - 1)
    y = torch.where(y0 >= height - 1, y0.to(y.dtype), y)
    x = torch.where(x0 >= width - 1, x0.to(x.dtype), x)
    y1 = (y0 + 1).clamp(max=height - 1)
    x1 = (x0 + 1).clamp(max=width - 1)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    value = (
        hy * hx * plane[:, y0, x0]
        + hy * lx * plane[:, y0, x1]
        + ly * hx * plane[:, y1, x0]
        + ly * lx * plane[:, y1, x1]
    )
    return value * inside


def roi_align_reference(
    input: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    """Mask R-CNN RoIAlign: each bin averages grid_h x grid_w bilinear samples."""
    out_h, out_w = output_size
    outputs = []
    for roi in rois.double().tolist():
        shift = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (v * spatial_scale - shift for v in roi[1:])
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        plane = input[int(roi[0])]
        if grid_h * grid_w == 0:
            outputs.append(input.new_zeros(input.shape[1], out_h, out_w))
            continue
        ys = torch.tensor(
            [y1 + p * bin_h + (i + 0.5) * bin_h / grid_h for p in range(out_h) for i in range(grid_h)],
            dtype=input.dtype,
        )
        xs = torch.tensor(
            [x1 + p * bin_w + (i + 0.5) * bin_w / grid_w for p in range(out_w) for i in range(grid_w)],
            dtype=input.dtype,
        )
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        samples = bilinear_points(plane, yy, xx)
        samples = samples.reshape(-1, out_h, grid_h, out_w, grid_w)
        outputs.append(samples.sum(dim=(2, 4)) / (grid_h * grid_w))
    if not outputs:
        return input.new_zeros(0, input.shape[1], out_h, out_w)
    return torch.stack(outputs)


def c_round(v: float) -> int:
    """C's round(): halves away from zero (Python's round() rounds halves to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def roi_pool_reference(
    input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float
) -> Tensor:
    """Fast R-CNN RoIPool: max over each bin of the RoI rounded to whole pixels."""
    out_h, out_w = output_size
    height, width = input.shape[-2:]
    outputs = []
    for roi in rois.double().tolist():
        x1, y1, x2, y2 = (c_round(v * spatial_scale) for v in roi[1:])
        roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        plane = input[int(roi[0])]
        bins = []
        for ph in range(out_h):
            h0 = min(max(math.floor(ph * roi_h / out_h) + y1, 0), height)
            h1 = min(max(math.ceil((ph + 1) * roi_h / out_h) + y1, 0), height)
            for pw in range(out_w):
                w0 = min(max(math.floor(pw * roi_w / out_w) + x1, 0), width)
                w1 = min(max(math.ceil((pw + 1) * roi_w / out_w) + x1, 0), width)
                if h1 <= h0 or w1 <= w0:
                    bins.append(input.new_zeros(input.shape[1]))
                else:
                    bins.append(plane[:, h0:h1, w0:w1].flatten(1).max(dim=1).values)
        outputs.append(torch.stack(bins, dim=1).reshape(-1, out_h, out_w))
    if not outputs:
        return input.new_zeros(0, input.shape[1], out_h, out_w)
    return torch.stack(outputs)


def roi_crop_reference(
    input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float
) -> Tensor:
    """Detectron.pytorch's RoICrop: affine grid of the RoI + bilinear grid_sample."""
    height, width = input.shape[-2:]
    scaled = rois[:, 1:].to(input.dtype) * spatial_scale
    x1, y1, x2, y2 = scaled.unbind(1)
    zero = torch.zeros_like(x1)
    theta = torch.stack(
        [
            (x2 - x1) / (width - 1),
            zero,
            (x1 + x2 - width + 1) / (width - 1),
            zero,
            (y2 - y1) / (height - 1),
            (y1 + y2 - height + 1) / (height - 1),
        ],
        dim=1,
    ).reshape(-1, 2, 3)
    size = (rois.shape[0], input.shape[1], *output_size)
    grid = torch.nn.functional.affine_grid(theta, list(size), align_corners=True)
    images = input[rois[:, 0].long()]
    return torch.nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
