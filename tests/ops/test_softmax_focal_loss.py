"""pydetectron.ops.softmax_focal_loss against a float64 reference and, for gamma = 0
without alpha, torch's cross entropy."""

import pytest
import torch
import torch.nn.functional as F
from focal_reference import softmax_focal_exact, softmax_focal_reference

from pydetectron.ops import softmax_focal_loss

SETTINGS = [(0.25, 2.0), (0.25, 0.0), (-1.0, 2.0), (0.75, 1.0), (0.4, 0.5), (0.25, 3.0)]
REDUCTIONS = ["none", "mean", "sum"]


def logits_and_labels(rows=200, classes=21, scale=4.0, seed=0, dtype=torch.float64,
                      ignored=0.1):
    """Random logits; labels mostly background (0), some foreground, some ignored (-1)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, classes, generator=g, dtype=torch.float64) * scale
    labels = torch.randint(1, classes, (rows,), generator=g)
    draw = torch.rand(rows, generator=g)
    labels = torch.where(draw < 0.6, 0, labels)
    labels = torch.where(draw > 1 - ignored, -1, labels)
    return logits.to(dtype), labels


def value_and_grad(function, logits, labels, *args, grad_seed=1):
    x = logits.clone().requires_grad_()
    out = function(x, labels, *args)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed))
    out.backward(upstream.to(out.dtype))
    return out.detach(), x.grad


@pytest.mark.parametrize("alpha, gamma", SETTINGS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, rtol, atol", [(torch.float64, 1e-12, 1e-12),
                                               (torch.float32, 1e-5, 1e-6)])
def test_matches_float64_reference(alpha, gamma, reduction, dtype, rtol, atol):
    logits, labels = logits_and_labels(dtype=dtype)
    out, grad = value_and_grad(softmax_focal_loss, logits, labels, alpha, gamma, reduction)
    ref, grad_ref = value_and_grad(softmax_focal_reference, logits.double(), labels, alpha, gamma,
                                   reduction)
    assert out.dtype == dtype and grad.dtype == dtype
    assert out.shape == ((200,) if reduction == "none" else ())
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=atol)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gamma_zero_without_alpha_is_cross_entropy(reduction):
    logits, labels = logits_and_labels(seed=1)
    out, grad = value_and_grad(softmax_focal_loss, logits, labels, -1.0, 0.0, reduction)
    ce, grad_ce = value_and_grad(
        lambda x, y: F.cross_entropy(x, y, ignore_index=-1, reduction=reduction), logits, labels
    )
    torch.testing.assert_close(out, ce, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_ce, rtol=1e-12, atol=1e-12)


def test_alpha_weights_foreground_and_background():
    logits, _ = logits_and_labels(rows=3, classes=4, seed=2)
    labels = torch.tensor([0, 2, -1])
    weighted = softmax_focal_loss(logits, labels, alpha=0.25, gamma=2.0)
    plain = softmax_focal_loss(logits, labels, alpha=-1.0, gamma=2.0)
    torch.testing.assert_close(weighted, plain * torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64))
    assert weighted[2].item() == 0.0


# float32: results far below 1 (1e-20 and less) inherit the rounding of subnormal
# intermediates such as exp(-100); errors under 1e-12 are beyond what float32 carries.
@pytest.mark.parametrize("dtype, rtol, atol", [(torch.float32, 1e-5, 1e-12),
                                               (torch.float64, 1e-12, 1e-300)])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.25, 0.5), (-1.0, 0.0)])
def test_extreme_logits_are_exact(dtype, rtol, atol, alpha, gamma):
    """Rows whose label is very sure, very wrong, tied, or far below the rest, against
    300-digit arithmetic: values and gradients to the dtype's precision."""
    logits = torch.tensor(
        [
            [100.0, -100.0, -100.0],
            [-100.0, 100.0, 0.0],
            [100.0, 100.0, -100.0],
            [0.0, 0.0, 0.0],
            [30.0, -30.0, 0.0],
        ],
        dtype=dtype,
    )
    for labels in (torch.tensor([0, 0, 1, 2, 1]), torch.tensor([1, 2, 0, 0, 0])):
        x = logits.clone().requires_grad_()
        out = softmax_focal_loss(x, labels, alpha, gamma, "none")
        out.sum().backward()
        exact = [softmax_focal_exact(row, label, alpha, gamma)
                 for row, label in zip(logits.tolist(), labels.tolist())]
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
        exact_loss = torch.tensor([e[0] for e in exact], dtype=torch.float64)
        exact_grad = torch.tensor([e[1] for e in exact], dtype=torch.float64)
        torch.testing.assert_close(out.double(), exact_loss, rtol=rtol, atol=atol)
        torch.testing.assert_close(x.grad.double(), exact_grad, rtol=rtol, atol=atol)


def test_ignored_rows_have_zero_loss_and_gradient():
    logits, labels = logits_and_labels(rows=50, seed=3, ignored=0.5)
    ignored = labels == -1
    assert 0 < ignored.sum() < 50
    out, grad = value_and_grad(softmax_focal_loss, logits, labels, 0.25, 2.0, "none")
    assert torch.equal(out[ignored], torch.zeros(int(ignored.sum()), dtype=torch.float64))
    assert torch.equal(grad[ignored], torch.zeros_like(grad[ignored]))
    assert (grad[~ignored].abs().sum(dim=1) > 0).all()
    mean = softmax_focal_loss(logits, labels, reduction="mean")
    torch.testing.assert_close(mean, out.sum() / (~ignored).sum())
    all_ignored = torch.full((50,), -1)
    assert softmax_focal_loss(logits, all_ignored, reduction="sum").item() == 0.0
    assert torch.isnan(softmax_focal_loss(logits, all_ignored, reduction="mean"))


@pytest.mark.parametrize("bad", [21, 40, -2])
def test_labels_outside_the_classes_raise(bad):
    logits, labels = logits_and_labels(rows=10, seed=4)
    labels[7] = bad
    message = rf"labels\[7\] = {bad} is neither a class in \[0, 21\) nor -1"
    with pytest.raises(ValueError, match=message):
        softmax_focal_loss(logits, labels)
    with pytest.raises(ValueError, match=message):
        torch.ops.pydetectron.softmax_focal_loss_backward(
            torch.ones(10, dtype=torch.float64), logits, labels, 0.25, 2.0, "none"
        )


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.5), (0.6, 0.0)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(alpha, gamma, reduction):
    logits, labels = logits_and_labels(rows=6, classes=4, scale=2.0, seed=5)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: softmax_focal_loss(x, labels, alpha, gamma, reduction), (logits,)
    )


@pytest.mark.parametrize("dtype, rtol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_types_compute_in_float32_on_cpu(dtype, rtol, reduction):
    logits, labels = logits_and_labels(rows=64, classes=9, seed=6, dtype=dtype)
    out, grad = value_and_grad(softmax_focal_loss, logits, labels, 0.25, 2.0, reduction)
    ref, grad_ref = value_and_grad(softmax_focal_reference, logits.double(), labels, 0.25, 2.0,
                                   reduction)
    assert out.dtype == dtype and grad.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=1e-6)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=2 * rtol,
                               atol=2 * rtol * grad_ref.abs().max().item())


def test_second_derivative_raises():
    logits, labels = logits_and_labels(rows=5, classes=3)
    logits.requires_grad_()
    (grad,) = torch.autograd.grad(softmax_focal_loss(logits, labels, reduction="sum"), logits,
                                  create_graph=True)
    with pytest.raises(RuntimeError, match="softmax_focal_loss: second derivatives are not supported"):
        grad.sum().backward()


def test_empty_rows_and_non_contiguous_logits():
    empty = torch.zeros(0, 5, requires_grad=True)
    labels = torch.zeros(0, dtype=torch.int64)
    assert softmax_focal_loss(empty, labels).shape == (0,)
    assert softmax_focal_loss(empty, labels, reduction="sum").item() == 0.0
    assert torch.isnan(softmax_focal_loss(empty, labels, reduction="mean"))
    softmax_focal_loss(empty, labels, reduction="sum").backward()
    assert empty.grad.shape == (0, 5)
    logits, labels = logits_and_labels(rows=30, classes=7, seed=7)
    transposed = logits.t().contiguous().t()
    assert not transposed.is_contiguous()
    torch.testing.assert_close(softmax_focal_loss(transposed, labels),
                               softmax_focal_loss(logits, labels), rtol=0, atol=0)


def test_cpu_autocast_computes_in_float32():
    logits, labels = logits_and_labels(rows=20, classes=5, seed=8, dtype=torch.float32)
    x = logits.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = softmax_focal_loss(x, labels, reduction="sum")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, softmax_focal_loss(x.detach().float(), labels, reduction="sum"))
    out.backward()
    assert x.grad.dtype == torch.bfloat16


def test_rejects_bad_arguments():
    logits, labels = logits_and_labels(rows=4, classes=3)
    with pytest.raises(ValueError, match=r"logits must be a 2-D \[N, C\] tensor"):
        softmax_focal_loss(logits[0], labels)
    with pytest.raises(ValueError, match=r"labels must be a \[N\] tensor with N = 4"):
        softmax_focal_loss(logits, labels[:3])
    with pytest.raises(TypeError, match="labels must be an int64 tensor"):
        softmax_focal_loss(logits, labels.int())
    with pytest.raises(TypeError, match="logits must be a floating point tensor"):
        softmax_focal_loss(logits.long(), labels)
    with pytest.raises(ValueError, match="reduction must be 'none', 'mean' or 'sum'"):
        softmax_focal_loss(logits, labels, reduction="batch")
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        softmax_focal_loss(logits, labels, gamma=-0.5)
    with pytest.raises(TypeError, match="softmax_focal_loss: labels must be int64"):
        torch.ops.pydetectron.softmax_focal_loss(logits, labels.int(), 0.25, 2.0, "none")
