"""Keypoints <-> RoI heatmaps (Detectron's keypoint_utils), vectorised torch.

Keypoints are [N, K, 3] (x, y, visibility) in image pixels. A heatmap target is the
linear index y * S + x of the keypoint's cell in its RoI's S x S grid (floor of the
scaled offset; a keypoint exactly on the RoI's right / bottom edge goes to the last cell),
valid when visible and inside the grid. Decoding upsamples each RoI's heatmaps bicubically
to the RoI's size in pixels and takes the argmax cell's centre (Heckbert's c = d + 0.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def keypoints_to_heatmap_targets(
    keypoints: torch.Tensor, rois: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(linear cell index [R, K] int64, valid [R, K] bool) of keypoints [R, K, 3] in rois [R, 4]."""
    if keypoints.shape[0] == 0:
        empty = torch.zeros(keypoints.shape[:2], dtype=torch.int64, device=keypoints.device)
        return empty, empty.bool()
    x1, y1, x2, y2 = (rois[:, i, None] for i in range(4))
    scale_x = size / (x2 - x1)
    scale_y = size / (y2 - y1)
    x, y = keypoints[..., 0], keypoints[..., 1]
    on_right, on_bottom = x == x2, y == y2
    cell_x = ((x - x1) * scale_x).floor().to(torch.int64)
    cell_y = ((y - y1) * scale_y).floor().to(torch.int64)
    cell_x = torch.where(on_right, torch.full_like(cell_x, size - 1), cell_x)
    cell_y = torch.where(on_bottom, torch.full_like(cell_y, size - 1), cell_y)
    inside = (cell_x >= 0) & (cell_y >= 0) & (cell_x < size) & (cell_y < size)
    valid = inside & (keypoints[..., 2] > 0)
    return torch.where(valid, cell_y * size + cell_x, torch.zeros_like(cell_x)), valid


def keypoints_inside_boxes(keypoints: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """[R, K] bool: visible keypoints [R, K, 3] lying inside their box [R, 4] (edges included)."""
    x, y = keypoints[..., 0], keypoints[..., 1]
    inside = (x >= boxes[:, 0, None]) & (x <= boxes[:, 2, None]) & (y >= boxes[:, 1, None]) & (y <= boxes[:, 3, None])
    return inside & (keypoints[..., 2] > 0)


def heatmaps_to_keypoints(heatmaps: torch.Tensor, rois: torch.Tensor, min_size: int = 0) -> torch.Tensor:
    """Keypoints [R, K, 4] (x, y, logit, probability) from heatmaps [R, K, S, S] of rois [R, 4].

    Each RoI's maps are upsampled (bicubic, half-pixel centres) to ceil(w) x ceil(h) pixels
    (at least `min_size`, KRCNN.INFERENCE_MIN_SIZE); the probability is the spatial softmax
    of the upsampled map at the argmax. Widths and heights below 1 count as 1.
    """
    num_rois, num_keypoints = heatmaps.shape[:2]
    out = heatmaps.new_zeros((num_rois, num_keypoints, 4), dtype=torch.float32)
    if num_rois == 0:
        return out
    rois = rois.to(torch.float32)
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1.0)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1.0)
    map_widths = widths.ceil().clamp(min=min_size).to(torch.int64).tolist()
    map_heights = heights.ceil().clamp(min=min_size).to(torch.int64).tolist()
    heatmaps = heatmaps.to(torch.float32)
    for i in range(num_rois):  # one resize per RoI: the output size differs per RoI
        upsampled = F.interpolate(
            heatmaps[i][:, None], size=(map_heights[i], map_widths[i]), mode="bicubic", align_corners=False
        )[:, 0]
        flat = upsampled.reshape(num_keypoints, -1)
        best, position = flat.max(dim=1)
        x_cell = position % map_widths[i]
        y_cell = position // map_widths[i]
        out[i, :, 0] = (x_cell.float() + 0.5) * (widths[i] / map_widths[i]) + rois[i, 0]
        out[i, :, 1] = (y_cell.float() + 0.5) * (heights[i] / map_heights[i]) + rois[i, 1]
        out[i, :, 2] = best
        out[i, :, 3] = torch.softmax(flat, dim=1).gather(1, position[:, None])[:, 0]
    return out


# COCO's per-keypoint OKS sigmas (person keypoints), as Detectron's compute_oks uses them.
COCO_KEYPOINT_SIGMAS = (
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89,
)


def keypoint_oks(keypoints: torch.Tensor, boxes: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """[N, N] object keypoint similarity of keypoints [N, K, >=2] w.r.t. each row's own box area
    (+1 widths), as Detectron's compute_oks (every keypoint counts)."""
    variances = (sigmas.to(keypoints) / 10.0 * 2) ** 2
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    dx = keypoints[None, :, :, 0] - keypoints[:, None, :, 0]
    dy = keypoints[None, :, :, 1] - keypoints[:, None, :, 1]
    error = (dx**2 + dy**2) / variances / (area[:, None, None] + torch.finfo(torch.float64).eps) / 2
    return torch.exp(-error).mean(dim=2)


def nms_oks(
    keypoints: torch.Tensor, boxes: torch.Tensor, threshold: float, sigmas=COCO_KEYPOINT_SIGMAS
) -> torch.Tensor:
    """Indices kept by greedy NMS on OKS (Detectron's nms_oks): detections are ranked by their
    mean keypoint logit (keypoints[..., 2]); one overlapping a kept one by OKS > threshold is dropped."""
    count = keypoints.shape[0]
    if count == 0:
        return torch.zeros(0, dtype=torch.int64, device=keypoints.device)
    sigma = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigma.numel() != keypoints.shape[1]:
        raise ValueError(f"KRCNN.NMS_OKS needs one OKS sigma per keypoint: {sigma.numel()} for {keypoints.shape[1]}")
    scores = keypoints[:, :, 2].double().mean(dim=1)
    order = torch.argsort(scores, descending=True, stable=True)
    oks = keypoint_oks(keypoints[order].double(), boxes[order].double(), sigma)
    suppressed = torch.zeros(count, dtype=torch.bool)
    keep = []
    over = (oks > threshold).cpu()
    for i in range(count):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return order[torch.as_tensor(keep, device=order.device)]
