"""CUDA kernels against the CPU kernels on the same random inputs (skipped without a GPU)."""

import pytest
import torch
from ops_inputs import clustered_boxes, random_map, random_rois

import pydetectron.ops as ops
from pydetectron.ops._library import OPS

pytestmark = pytest.mark.cuda

ROI_CASES = [  # (op, extra positional arguments after output_size and spatial_scale)
    ("roi_align", (2, False)),
    ("roi_align", (0, True)),
    ("roi_align", (-1, False)),
    ("roi_pool", ()),
    ("roi_crop", ()),
]


def roi_inputs(dtype, scale=0.25, num_rois=64):
    feature = random_map((2, 16, 25, 33), seed=1, dtype=dtype)
    rois = random_rois(num_rois, 2, 25 / scale, 33 / scale, seed=1, dtype=dtype)
    return feature, rois


def forward_backward(op, extra, feature, rois, grad_seed=0):
    x = feature.clone().requires_grad_()
    out = getattr(ops, op)(x, rois, (5, 6), 0.25, *extra)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed))
    out.backward(grad.to(out.device, out.dtype))
    return out.detach(), x.grad


@pytest.mark.parametrize("op, extra", ROI_CASES)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_roi_ops_match_cpu(op, extra, dtype, tol):
    feature, rois = roi_inputs(dtype)
    out_cpu, grad_cpu = forward_backward(op, extra, feature, rois)
    out_gpu, grad_gpu = forward_backward(op, extra, feature.cuda(), rois.cuda())
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=tol, atol=tol)
    torch.testing.assert_close(grad_gpu.cpu(), grad_cpu, rtol=tol, atol=tol)


@pytest.mark.parametrize("op, extra", ROI_CASES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_roi_ops_half_precision(op, extra, dtype):
    """Inputs rounded to the half type; the CPU float32 result of the same values is the
    reference. Errors are measured against the largest value (atomic adds in half)."""
    feature, rois = roi_inputs(torch.float32, num_rois=16)
    feature, rois = feature.to(dtype), rois.to(dtype)
    out_cpu, grad_cpu = forward_backward(op, extra, feature.float(), rois.float())
    out_gpu, grad_gpu = forward_backward(op, extra, feature.cuda(), rois.cuda())
    assert out_gpu.dtype == dtype and grad_gpu.dtype == dtype
    tol = 1e-2 if dtype == torch.float16 else 5e-2
    for got, want in ((out_gpu, out_cpu), (grad_gpu, grad_cpu)):
        assert (got.float().cpu() - want).abs().max() <= tol * want.abs().max()


def test_roi_pool_argmax_matches_cpu():
    feature, rois = roi_inputs(torch.float32)
    out_cpu, arg_cpu = OPS.roi_pool(feature, rois, 0.25, 7, 7)
    out_gpu, arg_gpu = OPS.roi_pool(feature.cuda(), rois.cuda(), 0.25, 7, 7)
    assert torch.equal(arg_gpu.cpu(), arg_cpu)
    assert torch.equal(out_gpu.cpu(), out_cpu)


@pytest.mark.parametrize("op, extra", ROI_CASES)
def test_roi_ops_channels_last_empty_and_autocast(op, extra):
    feature, rois = roi_inputs(torch.float32)
    feature, rois = feature.cuda(), rois.cuda()
    function = getattr(ops, op)
    expected = function(feature, rois, 4, 0.25, *extra)
    channels_last = feature.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(function(channels_last, rois, 4, 0.25, *extra), expected)
    assert function(feature, rois[:0], 4, 0.25, *extra).shape == (0, 16, 4, 4)
    with torch.autocast("cuda", dtype=torch.float16):
        out = function(feature.half(), rois, 4, 0.25, *extra)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 64, 65, 3000, 20000])
@pytest.mark.parametrize("plus_one", [False, True])
def test_nms_matches_cpu(dtype, n, plus_one):
    boxes, scores = clustered_boxes(n, seed=n, dtype=dtype)
    for threshold in (0.3, 0.7):
        keep_cpu = ops.nms(boxes, scores, threshold, plus_one=plus_one)
        keep_gpu = ops.nms(boxes.cuda(), scores.cuda(), threshold, plus_one=plus_one)
        assert keep_gpu.device.type == "cuda"
        assert torch.equal(keep_gpu.cpu(), keep_cpu)


@pytest.mark.parametrize("n", [500, 6000, 30000])
def test_batched_nms_matches_cpu(n):
    boxes, scores = clustered_boxes(n, seed=n)
    idxs = torch.randint(0, 80, (n,), generator=torch.Generator().manual_seed(n))
    expected = torch.ops.pydetectron.batched_nms(boxes, scores, idxs, 0.5)
    cuda_args = (boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5)
    assert torch.equal(torch.ops.pydetectron.batched_nms(*cuda_args).cpu(), expected)
    assert torch.equal(ops.batched_nms(*cuda_args).cpu(), expected)


def test_nms_empty_and_half():
    empty = ops.nms(torch.zeros(0, 4, device="cuda"), torch.zeros(0, device="cuda"), 0.5)
    assert empty.shape == (0,) and empty.device.type == "cuda"
    boxes, scores = clustered_boxes(500, seed=3, dtype=torch.float32)
    boxes = boxes.round()  # exact in float16
    keep_half = ops.nms(boxes.cuda().half(), scores.cuda().half(), 0.5)
    keep_float = ops.nms(boxes, scores.half().float(), 0.5)
    assert torch.equal(keep_half.cpu(), keep_float)


def test_nms_threshold_compares_as_double():
    boxes = torch.tensor([[0, 0, 2, 1], [1, 0, 3, 1]], device="cuda")
    scores = torch.tensor([0.9, 0.8], device="cuda")
    assert ops.nms(boxes, scores, 1 / 3).tolist() == [0]
    assert ops.nms(boxes.double(), scores.double(), 1 / 3).tolist() == [0, 1]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_sigmoid_focal_loss_matches_cpu(reduction, dtype, tol):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(500, 30, generator=g, dtype=torch.float64) * 8).to(dtype)
    x[0, :4] = torch.tensor([-100.0, 100.0, -30.0, 30.0])
    t = torch.rand(500, 30, generator=g, dtype=torch.float64).to(dtype)
    results = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_()
        td = t.to(device).requires_grad_()
        out = ops.sigmoid_focal_loss(xd, td, 0.25, 2.0, reduction)
        out.backward(torch.ones_like(out))
        results.append((out.detach().cpu(), xd.grad.cpu(), td.grad.cpu()))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("classes", [3, 81, 200])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_softmax_focal_loss_matches_cpu(reduction, classes, dtype, tol):
    g = torch.Generator().manual_seed(classes)
    logits = (torch.randn(700, classes, generator=g, dtype=torch.float64) * 5).to(dtype)
    logits[0, :3] = torch.tensor([100.0, -100.0, 100.0])
    labels = torch.randint(-1, classes, (700,), generator=g)
    results = []
    for device in ("cpu", "cuda"):
        x = logits.to(device).requires_grad_()
        out = ops.softmax_focal_loss(x, labels.to(device), 0.25, 2.0, reduction)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        out.backward(upstream.to(device, out.dtype))
        results.append((out.detach().cpu(), x.grad.cpu()))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_focal_losses_half_precision(dtype):
    """Half inputs compute in float on the GPU and float32 on the CPU: the same values."""
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(300, 20, generator=g) * 4).to(dtype)
    t = (torch.rand(300, 20, generator=g) < 0.2).to(dtype)
    labels = torch.randint(-1, 20, (300,), generator=g)
    for function, target in ((ops.sigmoid_focal_loss, t), (ops.softmax_focal_loss, labels)):
        cpu = function(x, target, reduction="none")
        gpu = function(x.cuda(), target.cuda(), reduction="none")
        assert gpu.dtype == dtype
        tol = 2e-3 if dtype == torch.float16 else 1.6e-2
        torch.testing.assert_close(gpu.cpu().float(), cpu.float(), rtol=tol, atol=1e-5)


def test_softmax_focal_loss_label_out_of_range_raises():
    logits = torch.randn(10, 4, device="cuda")
    labels = torch.zeros(10, dtype=torch.int64, device="cuda")
    labels[6] = 4
    with pytest.raises(ValueError, match=r"labels\[6\] = 4 is neither a class in \[0, 4\)"):
        ops.softmax_focal_loss(logits, labels)


def test_roi_align_sample_count_above_int32_matches_cpu():
    feature = random_map((1, 2, 9, 12), seed=3, dtype=torch.float64)
    rois = torch.tensor([[0, 0, 0, 324387, 324387], [0, -7e4, -9e4, 5e4, 6e4],
                         [0, float("nan"), 1, 5, 5]], dtype=torch.float64)
    for aligned in (False, True):
        out_cpu, grad_cpu = forward_backward("roi_align", (0, aligned), feature, rois)
        out_gpu, grad_gpu = forward_backward("roi_align", (0, aligned), feature.cuda(), rois.cuda())
        torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-9, atol=1e-20)
        torch.testing.assert_close(grad_gpu.cpu(), grad_cpu, rtol=1e-9, atol=1e-20)


@pytest.mark.parametrize("n", [300, 30000])  # class-aware single pass and per-class segments
def test_batched_nms_non_finite_boxes_and_large_ids_match_cpu(n):
    boxes, scores = clustered_boxes(n, seed=n)
    idxs = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(n)) + 2**40
    boxes[3] = float("nan")
    boxes[7, 2] = float("inf")
    expected = ops.batched_nms(boxes, scores, idxs, 0.5)
    got = ops.batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5)
    assert torch.equal(got.cpu(), expected)
    got_half = ops.batched_nms(boxes.cuda().half(), scores.cuda().half(), idxs.cuda(), 0.5)
    assert torch.equal(got_half.cpu(), ops.batched_nms(boxes.half(), scores.half(), idxs, 0.5))
