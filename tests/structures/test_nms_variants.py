"""Soft-NMS and box voting against straightforward per-box references (Detectron's loops)."""

import numpy as np
import pytest
import torch

from pydetectron.structures.nms_variants import box_voting, soft_nms


def iou_plus_one(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def reference_soft_nms(boxes, scores, sigma, nt, thresh, method):
    """The swap-based loop of the Cython soft-NMS, on (index, box, score) rows."""
    rows = [[i, boxes[i].copy(), float(scores[i])] for i in range(len(scores))]
    out, n, i = [], len(rows), 0
    while i < n:
        best = max(range(i, n), key=lambda k: rows[k][2])
        rows[i], rows[best] = rows[best], rows[i]
        pos = i + 1
        while pos < n:
            ov = iou_plus_one(rows[i][1], rows[pos][1])
            if method == "linear":
                weight = 1 - ov if ov > nt else 1.0
            elif method == "gaussian":
                weight = np.exp(-(ov * ov) / sigma)
            else:
                weight = 0.0 if ov > nt else 1.0
            rows[pos][2] *= weight
            if rows[pos][2] < thresh:
                rows[pos], rows[n - 1] = rows[n - 1], rows[pos]
                n -= 1
                pos -= 1
            pos += 1
        out.append((rows[i][0], rows[i][2]))
        i += 1
    return out


def clustered_boxes(n: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 80, size=(4, 2))
    c = centres[rng.integers(0, 4, n)] + rng.normal(0, 4, size=(n, 2))
    wh = rng.uniform(10, 30, size=(n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=1)
    return boxes, rng.uniform(0.05, 1.0, n)


@pytest.mark.parametrize("method", ["linear", "gaussian", "hard"])
def test_soft_nms_matches_reference(method):
    boxes, scores = clustered_boxes(40, 0)
    expected = reference_soft_nms(boxes, scores, 0.5, 0.3, 0.001, method)
    keep, new_scores = soft_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5, 0.3, 0.001, method)
    assert keep.tolist() == [e[0] for e in expected]
    np.testing.assert_allclose(new_scores.numpy(), [e[1] for e in expected], rtol=1e-12)


def reference_vote(top_boxes, top_scores, all_boxes, all_scores, thresh, method, beta):
    out_b, out_s = top_boxes.copy(), top_scores.copy()
    for k in range(len(top_boxes)):
        ov = np.array([iou_plus_one(top_boxes[k], b) for b in all_boxes])
        idx = np.where(ov >= thresh)[0]
        ws = all_scores[idx]
        out_b[k] = np.average(all_boxes[idx], axis=0, weights=ws)
        if method == "TEMP_AVG":
            p = np.vstack((ws, 1 - ws))
            x = np.exp(np.log(p / p.max(axis=0)) / beta)
            out_s[k] = (x / x.sum(axis=0))[0].mean()
        elif method == "AVG":
            out_s[k] = ws.mean()
        elif method == "IOU_AVG":
            out_s[k] = np.average(ws, weights=ov[idx])
        elif method == "GENERALIZED_AVG":
            out_s[k] = np.mean(ws**beta) ** (1.0 / beta)
        elif method == "QUASI_SUM":
            out_s[k] = ws.sum() / float(len(ws)) ** beta
    return out_b, out_s


@pytest.mark.parametrize("method", ["ID", "TEMP_AVG", "AVG", "IOU_AVG", "GENERALIZED_AVG", "QUASI_SUM"])
def test_box_voting_matches_reference(method):
    boxes, scores = clustered_boxes(30, 1)
    top = [0, 5, 9]
    exp_b, exp_s = reference_vote(boxes[top], scores[top], boxes, scores, 0.6, method, 1.5)
    got_b, got_s = box_voting(
        torch.from_numpy(boxes[top]), torch.from_numpy(scores[top]), torch.from_numpy(boxes),
        torch.from_numpy(scores), 0.6, method, 1.5,
    )
    np.testing.assert_allclose(got_b.numpy(), exp_b, rtol=1e-10)
    np.testing.assert_allclose(got_s.numpy(), exp_s, rtol=1e-10)


def test_unknown_methods_are_named():
    with pytest.raises(ValueError, match="soft_nms method"):
        soft_nms(torch.zeros(1, 4), torch.ones(1), method="cubic")
    with pytest.raises(ValueError, match="scoring_method"):
        box_voting(torch.zeros(1, 4), torch.ones(1), torch.zeros(1, 4), torch.ones(1), 0.5, "MAX")
