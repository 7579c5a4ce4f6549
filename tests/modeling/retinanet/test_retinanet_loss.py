"""RetinaNet losses against float64 references of Detectron's loss ops and normalisations."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retinanet_reference import sigmoid_focal_loss_sum, smooth_l1_sum, softmax_focal_loss_sum  # noqa: E402

from pydetectron.modeling.retinanet import RetinaNetLoss, RetinaNetTargets  # noqa: E402

NUM_CLASSES = 5
NUM_ANCHORS = 40


def random_targets(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(-1, NUM_CLASSES, (2, NUM_ANCHORS), generator=g)
    labels[1, :] = torch.where(labels[1] > 0, 0, labels[1])  # image 1: no foreground at all
    bbox_targets = torch.randn(2, NUM_ANCHORS, 4, generator=g, dtype=torch.float64) * (labels > 0)[..., None]
    num_foreground = (labels > 0).sum(dim=1).to(torch.float64) + torch.tensor([2.0, 0.0], dtype=torch.float64)
    return RetinaNetTargets(labels, bbox_targets, num_foreground)


def outputs(num_logits, box_dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, NUM_ANCHORS, num_logits, generator=g, dtype=torch.float64) * 2
    deltas = torch.randn(2, NUM_ANCHORS, box_dim, generator=g, dtype=torch.float64) * 0.3
    return logits.requires_grad_(), deltas.requires_grad_()


def reference_box_sums(deltas, targets, class_specific, beta):
    sums = []
    for image in range(2):
        total = 0.0
        for row in np.nonzero(targets.labels[image].numpy() > 0)[0]:
            label = int(targets.labels[image, row])
            pred = deltas[image, row].detach().numpy()
            pred = pred.reshape(-1, 4)[label - 1] if class_specific else pred
            total += smooth_l1_sum(pred, targets.bbox_targets[image, row].numpy(), beta)
        sums.append(total)
    return np.array(sums)


def test_detectron_sigmoid_loss_normalised_by_batch_foreground_plus_one():
    targets = random_targets()
    loss = RetinaNetLoss(NUM_CLASSES, alpha=0.25, gamma=2.0, beta=0.11, bbox_reg_weight=2.0)
    logits, deltas = outputs(loss.num_logits, loss.box_dim)
    got = loss(logits, deltas, targets)
    normaliser = (targets.num_foreground + 1).sum().item()
    cls = sum(
        sigmoid_focal_loss_sum(logits[i].detach().numpy(), targets.labels[i].numpy(), 0.25, 2.0) for i in range(2)
    )
    box = reference_box_sums(deltas, targets, False, 0.11).sum()
    assert got["loss_retnet_cls"].item() == pytest.approx(cls / normaliser, rel=1e-10)
    assert got["loss_retnet_bbox"].item() == pytest.approx(2.0 * box / normaliser, rel=1e-10)
    assert got["retnet_fg_num"].item() == (targets.labels > 0).sum().item()
    assert got["retnet_bg_num"].item() == (targets.labels == 0).sum().item()
    (got["loss_retnet_cls"] + got["loss_retnet_bbox"]).backward()
    ignored = targets.labels < 0
    assert torch.all(logits.grad[ignored] == 0) and torch.all(logits.grad[~ignored].abs().sum(-1) > 0)
    assert torch.all(deltas.grad[targets.labels <= 0] == 0)


def test_softmax_class_specific_loss():
    targets = random_targets(seed=3)
    loss = RetinaNetLoss(NUM_CLASSES, softmax=True, class_specific_bbox=True, alpha=0.3, gamma=1.5, beta=0.2)
    logits, deltas = outputs(loss.num_logits, loss.box_dim)
    assert (loss.num_logits, loss.box_dim) == (NUM_CLASSES, 4 * (NUM_CLASSES - 1))
    got = loss(logits, deltas, targets)
    normaliser = (targets.num_foreground + 1).sum().item()
    cls = sum(softmax_focal_loss_sum(logits[i].detach().numpy(), targets.labels[i].numpy(), 0.3, 1.5) for i in range(2))
    box = reference_box_sums(deltas, targets, True, 0.2).sum()
    assert got["loss_retnet_cls"].item() == pytest.approx(cls / normaliser, rel=1e-10)
    assert got["loss_retnet_bbox"].item() == pytest.approx(box / normaliser, rel=1e-10)


def test_torchvision_layout_per_image_normalisation_and_l1():
    targets = random_targets(seed=5)
    loss = RetinaNetLoss(NUM_CLASSES, background_logit=True, beta=0.0, normalization="per_image_fg")
    logits, deltas = outputs(loss.num_logits, loss.box_dim)
    assert loss.num_logits == NUM_CLASSES
    got = loss(logits, deltas, targets)
    per_image = targets.num_foreground.clamp(min=1).numpy()
    cls = [
        sigmoid_focal_loss_sum(logits[i].detach().numpy(), targets.labels[i].numpy(), 0.25, 2.0, offset=0)
        for i in range(2)
    ]
    box = []
    for image in range(2):
        fg = targets.labels[image] > 0
        box.append(np.abs(deltas[image][fg].detach().numpy() - targets.bbox_targets[image][fg].numpy()).sum())
    assert got["loss_retnet_cls"].item() == pytest.approx(np.mean(np.array(cls) / per_image), rel=1e-10)
    assert got["loss_retnet_bbox"].item() == pytest.approx(np.mean(np.array(box) / per_image), rel=1e-10)


def test_float32_outputs_and_empty_foreground():
    targets = random_targets()
    targets.labels[:] = torch.where(targets.labels > 0, 0, targets.labels)
    targets.num_foreground.zero_()
    loss = RetinaNetLoss(NUM_CLASSES)
    logits, deltas = outputs(loss.num_logits, loss.box_dim)
    got = loss(logits.detach().float(), deltas.detach().float(), targets)
    assert got["loss_retnet_cls"].dtype == torch.float32 and got["loss_retnet_bbox"].item() == 0.0
    assert torch.isfinite(got["loss_retnet_cls"])


def test_bad_settings_and_shapes_are_named():
    with pytest.raises(ValueError, match="normalization"):
        RetinaNetLoss(5, normalization="mean")
    with pytest.raises(ValueError, match="background_logit"):
        RetinaNetLoss(5, softmax=True, background_logit=True)
    loss = RetinaNetLoss(5)
    with pytest.raises(ValueError, match=r"cls_logits must have shape \(2, 40, 4\)"):
        loss(*outputs(5, 4), random_targets())
