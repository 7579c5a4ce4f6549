"""pydetectron.ops.sigmoid_focal_loss against torchvision and a float64 reference."""

import pytest
import torch
import torchvision
from focal_reference import sigmoid_focal_exact, sigmoid_focal_reference

from pydetectron.ops import sigmoid_focal_loss

SETTINGS = [(0.25, 2.0), (0.25, 0.0), (-1.0, 2.0), (0.75, 1.0), (0.4, 1.5), (0.25, 3.0)]
REDUCTIONS = ["none", "mean", "sum"]


def logits_and_targets(shape=(300, 20), scale=6.0, seed=0, dtype=torch.float64, soft=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    t = torch.rand(shape, generator=g, dtype=torch.float64)
    t = t if soft else (t < 0.1).double()
    return x.to(dtype), t.to(dtype)


def value_and_grads(function, x, t, *args, grad_seed=1, targets_grad=False):
    """Output and the gradients for a random upstream gradient (ones if grad_seed is None)."""
    x = x.clone().requires_grad_()
    t = t.clone().requires_grad_(targets_grad)
    out = function(x, t, *args)
    if grad_seed is None:
        upstream = torch.ones(out.shape)
    else:
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed))
    out.backward(upstream.to(out.dtype))
    return out.detach(), x.grad, t.grad


@pytest.mark.parametrize("alpha, gamma", SETTINGS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_matches_torchvision(alpha, gamma, reduction, dtype, tol):
    x, t = logits_and_targets(dtype=dtype)
    out, gx, _ = value_and_grads(sigmoid_focal_loss, x, t, alpha, gamma, reduction)
    tv, gx_tv, _ = value_and_grads(torchvision.ops.sigmoid_focal_loss, x, t, alpha, gamma, reduction)
    assert out.dtype == dtype and out.shape == tv.shape
    torch.testing.assert_close(out, tv, rtol=tol, atol=tol)
    torch.testing.assert_close(gx, gx_tv, rtol=tol, atol=tol)


@pytest.mark.parametrize("alpha, gamma", SETTINGS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_matches_float64_reference(alpha, gamma, reduction):
    """Values and gradients (w.r.t. logits and soft targets) of the float32 kernel
    against the float64 reference, to float32 accuracy."""
    x, t = logits_and_targets(seed=2, soft=True)
    out, gx, gt = value_and_grads(sigmoid_focal_loss, x.float(), t.float(), alpha, gamma,
                                  reduction, targets_grad=True)
    ref, gx_ref, gt_ref = value_and_grads(sigmoid_focal_reference, x.float().double(),
                                          t.float().double(), alpha, gamma, reduction,
                                          targets_grad=True)
    assert out.dtype == torch.float32 and gt.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx.double(), gx_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gt.double(), gt_ref, rtol=1e-5, atol=1e-5)


# float32: results far below 1 (1e-20 and less) inherit the rounding of subnormal
# intermediates such as exp(-100); errors under 1e-12 are beyond what float32 carries.
@pytest.mark.parametrize("dtype, rtol, atol", [(torch.float32, 1e-5, 1e-12),
                                               (torch.float64, 1e-12, 1e-300)])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.25, 0.5), (-1.0, 1.0)])
def test_extreme_logits_are_exact(dtype, rtol, atol, alpha, gamma):
    """Logits up to +-100 with hard targets against 300-digit arithmetic: values and both
    gradients to the dtype's precision (results below the smallest normal may flush)."""
    values = [-100.0, -40.0, -30.0, -17.0, -1e-3, 0.0, 1e-3, 17.0, 30.0, 40.0, 100.0]
    x = torch.tensor(values * 2, dtype=dtype)
    t = torch.tensor([0.0] * len(values) + [1.0] * len(values), dtype=dtype)
    out, gx, gt = value_and_grads(sigmoid_focal_loss, x, t, alpha, gamma, "none", grad_seed=None,
                                  targets_grad=True)
    exact = torch.tensor([sigmoid_focal_exact(a, b, alpha, gamma) for a, b in zip(x.tolist(), t.tolist())],
                         dtype=torch.float64)
    for got, column in ((out, 0), (gx, 1), (gt, 2)):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), exact[:, column], rtol=rtol, atol=atol)
    # A confident wrong answer costs a_t * |x| (its focal factor is 1).
    torch.testing.assert_close(out[len(values)].double(), torch.tensor(25.0, dtype=torch.float64)
                               if alpha >= 0 else torch.tensor(100.0, dtype=torch.float64))


def test_targets_gradient_matches_torchvision():
    x, t = logits_and_targets(seed=3, soft=True, dtype=torch.float64)
    out, gx, gt = value_and_grads(sigmoid_focal_loss, x, t, 0.3, 2.0, "sum", targets_grad=True)
    tv, gx_tv, gt_tv = value_and_grads(torchvision.ops.sigmoid_focal_loss, x, t, 0.3, 2.0, "sum",
                                       targets_grad=True)
    torch.testing.assert_close(out, tv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_tv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gt, gt_tv, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 1.5), (0.6, 0.0)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(alpha, gamma, reduction):
    x, t = logits_and_targets(shape=(4, 5), scale=3.0, seed=4, soft=True)
    x.requires_grad_()
    t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: sigmoid_focal_loss(a, b, alpha, gamma, reduction), (x, t)
    )


@pytest.mark.parametrize("dtype, rtol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_types_compute_in_float32_on_cpu(dtype, rtol, reduction):
    """The half tensors' values, computed in float32 and rounded once: within one rounding
    of the float64 reference of the same values."""
    x, t = logits_and_targets(shape=(64, 10), seed=5, dtype=dtype)
    out, gx, _ = value_and_grads(sigmoid_focal_loss, x, t, 0.25, 2.0, reduction)
    assert out.dtype == dtype and gx.dtype == dtype
    ref, gx_ref, _ = value_and_grads(sigmoid_focal_reference, x.double(), t.double(), 0.25, 2.0,
                                     reduction)
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=1e-6)
    # The reference saw the unrounded float64 upstream gradient; ours the rounded one.
    torch.testing.assert_close(gx.double(), gx_ref, rtol=2 * rtol, atol=1e-4)


@pytest.mark.parametrize("targets_grad", [False, True])
def test_second_derivative_raises(targets_grad):
    x, t = logits_and_targets(shape=(5, 3))
    x.requires_grad_()
    t.requires_grad_(targets_grad)
    (grad,) = torch.autograd.grad(sigmoid_focal_loss(x, t, reduction="sum"), x, create_graph=True)
    with pytest.raises(RuntimeError, match="sigmoid_focal_loss: second derivatives are not supported"):
        grad.sum().backward()


def test_empty_inputs():
    x = torch.zeros(0, 80, requires_grad=True)
    t = torch.zeros(0, 80)
    none = sigmoid_focal_loss(x, t)
    assert none.shape == (0, 80)
    assert sigmoid_focal_loss(x, t, reduction="sum").item() == 0.0
    mean = sigmoid_focal_loss(x, t, reduction="mean")
    assert torch.isnan(mean) and torch.isnan(torchvision.ops.sigmoid_focal_loss(x, t, reduction="mean"))
    sigmoid_focal_loss(x, t, reduction="sum").backward()
    assert x.grad.shape == (0, 80)


def test_non_contiguous_and_any_shape():
    x, t = logits_and_targets(shape=(6, 7, 8), seed=6)
    xt, tt = x.transpose(0, 2), t.transpose(0, 2)
    assert not xt.is_contiguous()
    out, gx, _ = value_and_grads(sigmoid_focal_loss, xt, tt, 0.25, 2.0, "none")
    tv, gx_tv, _ = value_and_grads(torchvision.ops.sigmoid_focal_loss, xt, tt, 0.25, 2.0, "none")
    assert out.shape == (8, 7, 6)
    torch.testing.assert_close(out, tv, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_tv, rtol=1e-12, atol=1e-12)
    scalar = sigmoid_focal_loss(torch.tensor(0.3), torch.tensor(1.0))
    torch.testing.assert_close(scalar, torchvision.ops.sigmoid_focal_loss(torch.tensor(0.3),
                                                                          torch.tensor(1.0)))


def test_mixed_dtypes_promote_like_torchvision():
    x, t = logits_and_targets(shape=(10, 3), seed=7, dtype=torch.float32)
    out = sigmoid_focal_loss(x, t.double(), reduction="sum")
    tv = torchvision.ops.sigmoid_focal_loss(x, t.double(), reduction="sum")
    assert out.dtype == tv.dtype == torch.float64
    torch.testing.assert_close(out, tv)


def test_cpu_autocast_computes_in_float32():
    x, t = logits_and_targets(shape=(20, 4), seed=8, dtype=torch.float32)
    xb = x.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sigmoid_focal_loss(xb, t.to(torch.bfloat16), reduction="mean")
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out, sigmoid_focal_loss(xb.detach().float(), t.to(torch.bfloat16).float(), reduction="mean")
    )
    out.backward()
    assert xb.grad.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"reduction": "avg"}, ValueError, "reduction must be 'none', 'mean' or 'sum'"),
        ({"gamma": -1.0}, ValueError, "gamma must be >= 0"),
        ({"alpha": float("nan")}, ValueError, "alpha must be a finite number"),
        ({"gamma": "2"}, TypeError, "gamma must be a number"),
    ],
)
def test_rejects_bad_settings(kwargs, error, message):
    x, t = logits_and_targets(shape=(2, 3))
    with pytest.raises(error, match=message):
        sigmoid_focal_loss(x, t, **kwargs)


def test_rejects_bad_tensors():
    x, t = logits_and_targets(shape=(2, 3))
    with pytest.raises(ValueError, match=r"targets must have the shape of inputs \(2, 3\)"):
        sigmoid_focal_loss(x, t[:1])
    with pytest.raises(TypeError, match="targets must be a floating point tensor"):
        sigmoid_focal_loss(x, t.long())
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor"):
        sigmoid_focal_loss(x.tolist(), t)
    with pytest.raises(ValueError, match="inputs and targets must be on the same device"):
        sigmoid_focal_loss(x, t.to("meta"))
    with pytest.raises(ValueError, match="sigmoid_focal_loss: reduction must be"):
        torch.ops.pydetectron.sigmoid_focal_loss(x, t, 0.25, 2.0, "avg")
    with pytest.raises(TypeError, match="inputs and targets must have the same dtype"):
        torch.ops.pydetectron.sigmoid_focal_loss(x, t.float(), 0.25, 2.0, "sum")
