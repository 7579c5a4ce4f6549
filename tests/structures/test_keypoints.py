"""Keypoint heatmap targets and decoding: torchvision's functions, round trips, OKS NMS."""

import numpy as np
import torch
from torchvision.models.detection import roi_heads as tv_roi_heads

from pydetectron.structures.keypoints import (
    heatmaps_to_keypoints,
    keypoint_oks,
    keypoints_inside_boxes,
    keypoints_to_heatmap_targets,
    nms_oks,
)


def random_keypoints(num_rois, num_keypoints, generator):
    xy = torch.rand(num_rois, 2, generator=generator) * 200
    rois = torch.cat([xy, xy + 20 + torch.rand(num_rois, 2, generator=generator) * 100], dim=1)
    frac = torch.rand(num_rois, num_keypoints, 2, generator=generator) * 1.4 - 0.2  # some outside
    kp_xy = rois[:, None, :2] + frac * (rois[:, None, 2:] - rois[:, None, :2])
    vis = (torch.rand(num_rois, num_keypoints, 1, generator=generator) > 0.3).float() * 2
    keypoints = torch.cat([kp_xy, vis], dim=2)
    keypoints[0, 0, 0] = rois[0, 2]  # exactly on the right edge: the last cell
    keypoints[0, 0, 2] = 2
    return keypoints, rois


def test_heatmap_targets_equal_torchvisions():
    g = torch.Generator().manual_seed(0)
    keypoints, rois = random_keypoints(40, 17, g)
    cells, valid = keypoints_to_heatmap_targets(keypoints, rois, 56)
    tv_cells, tv_valid = tv_roi_heads.keypoints_to_heatmap(keypoints, rois, 56)
    assert torch.equal(valid, tv_valid.bool())
    assert torch.equal(cells, tv_cells)
    assert valid[0, 0] and cells[0, 0] % 56 == 55


def test_hand_computed_target_cell():
    keypoints = torch.tensor([[[15.0, 12.0, 1.0], [5.0, 5.0, 0.0], [50.0, 12.0, 2.0]]])
    rois = torch.tensor([[10.0, 10.0, 20.0, 30.0]])  # 10 wide, 20 high, 4x4 grid
    cells, valid = keypoints_to_heatmap_targets(keypoints, rois, 4)
    # x: (15 - 10) * 4 / 10 = 2; y: (12 - 10) * 4 / 20 = 0.4 -> 0: cell 0 * 4 + 2
    assert cells.tolist() == [[2, 0, 0]] and valid.tolist() == [[True, False, False]]


def test_decoding_equals_torchvisions_and_round_trips_within_a_pixel():
    g = torch.Generator().manual_seed(1)
    keypoints, rois = random_keypoints(25, 5, g)
    keypoints[..., 2] = 2
    inside = keypoints_inside_boxes(keypoints, rois)
    cells, valid = keypoints_to_heatmap_targets(keypoints, rois, 56)
    heatmaps = torch.full((25, 5, 56 * 56), -10.0)
    heatmaps.scatter_(2, cells[..., None], 10.0)
    heatmaps = heatmaps.view(25, 5, 56, 56)
    decoded = heatmaps_to_keypoints(heatmaps, rois)
    tv_xy, tv_scores = tv_roi_heads.heatmaps_to_keypoints(heatmaps, rois)
    torch.testing.assert_close(decoded[..., :2], tv_xy[..., :2])
    torch.testing.assert_close(decoded[..., 2], tv_scores)
    error = (decoded[..., :2] - keypoints[..., :2]).abs()
    cell = ((rois[:, 2:] - rois[:, :2]) / 56)[:, None, :]
    assert (error[valid] <= (cell.expand_as(error)[valid] / 2 + 1.0)).all()  # half a cell, plus resampling
    assert valid[inside].all()
    probs = decoded[..., 3]
    assert ((probs > 0) & (probs <= 1)).all()


def detectron_nms_oks(kps: np.ndarray, rois: np.ndarray, thresh: float) -> list[int]:
    """Detectron's keypoint_utils.nms_oks (kps [N, 4, K]), the reference."""
    sigmas = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
                       0.89, 0.89]) / 10.0  # fmt: skip
    variances = (sigmas * 2) ** 2
    scores = kps[:, 2, :].mean(axis=1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        area = (rois[i, 2] - rois[i, 0] + 1) * (rois[i, 3] - rois[i, 1] + 1)
        dx = kps[order[1:], 0, :] - kps[i, 0, :]
        dy = kps[order[1:], 1, :] - kps[i, 1, :]
        e = (dx**2 + dy**2) / variances / (area + np.spacing(1)) / 2
        overlap = np.exp(-e).sum(axis=1) / e.shape[1]
        order = order[np.where(overlap <= thresh)[0] + 1]
    return keep


def test_oks_nms_equals_detectrons():
    rng = np.random.default_rng(2)
    base = rng.uniform(50, 150, size=(6, 17, 2))
    kps = np.concatenate([base + rng.normal(0, s, size=base.shape) for s in (0.5, 3, 8)])
    logits = rng.normal(size=(len(kps), 17, 1))
    keypoints = torch.from_numpy(np.concatenate([kps, logits], axis=2))
    boxes = torch.cat([keypoints[:, :, :2].min(dim=1).values, keypoints[:, :, :2].max(dim=1).values], dim=1)
    kept = nms_oks(keypoints, boxes, 0.3)
    reference = detectron_nms_oks(keypoints.numpy().transpose(0, 2, 1), boxes.numpy(), 0.3)
    assert kept.tolist() == reference
    assert 0 < len(reference) < len(keypoints)
    oks = keypoint_oks(keypoints.double(), boxes.double(), torch.ones(17) * 0.5)
    assert torch.allclose(oks.diagonal(), torch.ones(len(keypoints), dtype=torch.float64))
