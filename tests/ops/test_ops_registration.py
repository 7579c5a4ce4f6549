"""The ops as torch custom ops: opcheck (schema, fake kernels, autograd registration),
torch.compile, and autocast running them in float32."""

import pytest
import torch
from ops_inputs import random_map, random_rois

import pydetectron.ops as ops
from pydetectron.ops._library import OPS


def roi_args(dtype=torch.float64):
    feature = random_map((2, 3, 9, 11), seed=1, dtype=dtype)
    rois = random_rois(5, 2, 18, 22, seed=1, dtype=dtype)
    return feature, rois


def opcheck_cases():
    feature, rois = roi_args()
    x = feature.requires_grad_()
    grad = torch.randn(5, 3, 2, 3, dtype=torch.float64)
    _, argmax = OPS.roi_pool(feature.detach(), rois, 0.5, 2, 3)
    boxes = torch.rand(30, 4, dtype=torch.float64) * 10
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(30, dtype=torch.float64)
    logits = torch.randn(12, 5, dtype=torch.float64).requires_grad_()
    targets = (torch.rand(12, 5, dtype=torch.float64) < 0.3).double()
    labels = torch.tensor([0, 1, 4, -1, 2, 0, 0, 3, -1, 1, 0, 2])
    row_grad = torch.randn(12, dtype=torch.float64)
    return {
        "roi_align": (OPS.roi_align.default, (x, rois, 0.5, 2, 3, 2, True)),
        "roi_align_backward": (
            OPS.roi_align_backward.default,
            (grad, rois, 0.5, 2, 3, 2, 3, 9, 11, 0, False),
        ),
        "roi_pool": (OPS.roi_pool.default, (x, rois, 0.5, 2, 3)),
        "roi_pool_backward": (
            OPS.roi_pool_backward.default,
            (grad, rois, argmax, 0.5, 2, 3, 2, 3, 9, 11),
        ),
        "roi_crop": (OPS.roi_crop.default, (x, rois, 0.5, 2, 3)),
        "roi_crop_backward": (OPS.roi_crop_backward.default, (grad, rois, 0.5, 2, 3, 2, 3, 9, 11)),
        "nms": (OPS.nms.default, (boxes, scores, 0.5, False)),
        "batched_nms": (
            OPS.batched_nms.default,
            (boxes, scores, torch.arange(30) % 3, 0.5, True),
        ),
        "sigmoid_focal_loss none": (
            OPS.sigmoid_focal_loss.default, (logits, targets, 0.25, 2.0, "none")
        ),
        "sigmoid_focal_loss mean": (
            OPS.sigmoid_focal_loss.default,
            (logits, targets.clone().requires_grad_(), 0.25, 1.5, "mean"),
        ),
        "sigmoid_focal_loss_backward": (
            OPS.sigmoid_focal_loss_backward.default,
            (torch.tensor(2.0, dtype=torch.float64), logits.detach(), targets.detach(), -1.0, 2.0,
             "sum", True),
        ),
        "softmax_focal_loss none": (
            OPS.softmax_focal_loss.default, (logits, labels, 0.25, 2.0, "none")
        ),
        "softmax_focal_loss sum": (
            OPS.softmax_focal_loss.default, (logits, labels, 0.25, 0.5, "sum")
        ),
        "softmax_focal_loss_backward": (
            OPS.softmax_focal_loss_backward.default,
            (row_grad, logits.detach(), labels, 0.25, 2.0, "none"),
        ),
    }


@pytest.mark.parametrize("name", list(opcheck_cases()))
def test_opcheck(name):
    op, args = opcheck_cases()[name]
    torch.library.opcheck(op, args)


def test_roi_align_under_torch_compile():
    feature, rois = roi_args()

    def head(x, r):
        return ops.roi_align(x, r, (3, 3), 0.5, 2, False).relu().sum()

    compiled = torch.compile(head, backend="aot_eager", fullgraph=True)
    x = feature.clone().requires_grad_()
    x_eager = feature.clone().requires_grad_()
    value = compiled(x, rois)
    expected = head(x_eager, rois)
    torch.testing.assert_close(value, expected)
    value.backward()
    expected.backward()
    torch.testing.assert_close(x.grad, x_eager.grad)


def test_nms_under_torch_compile():
    boxes = torch.rand(50, 4) * 20
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(50)
    idxs = torch.arange(50) % 4

    def postprocess(b, s, i):
        keep = ops.batched_nms(b, s, i, 0.5)
        return b[keep], ops.nms(b, s, 0.3)

    compiled = torch.compile(postprocess, backend="aot_eager")
    for got, want in zip(compiled(boxes, scores, idxs), postprocess(boxes, scores, idxs)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool", "roi_crop"])
def test_cpu_autocast_runs_in_float32(op):
    feature, rois = roi_args(torch.float32)
    function = getattr(ops, op)
    expected = function(feature, rois, 3, 0.5)
    x = feature.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = function(x, rois, 3, 0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, function(x.detach().float(), rois, 3, 0.5))
    torch.testing.assert_close(out, expected, rtol=0.05, atol=0.05)
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


def test_focal_losses_under_torch_compile():
    logits = torch.randn(40, 6)
    targets = (torch.rand(40, 6) < 0.2).float()
    labels = torch.randint(-1, 6, (40,))

    def loss(x, t, y):
        return ops.sigmoid_focal_loss(x, t, reduction="sum") + ops.softmax_focal_loss(
            x, y, reduction="mean"
        )

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    x = logits.clone().requires_grad_()
    x_eager = logits.clone().requires_grad_()
    value = compiled(x, targets, labels)
    expected = loss(x_eager, targets, labels)
    torch.testing.assert_close(value, expected)
    value.backward()
    expected.backward()
    torch.testing.assert_close(x.grad, x_eager.grad)


def test_cpu_autocast_nms():
    boxes = (torch.rand(40, 4) * 20).to(torch.bfloat16)
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(40).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keep = ops.nms(boxes, scores, 0.5)
    assert torch.equal(keep, ops.nms(boxes.float(), scores.float(), 0.5))


def test_every_op_has_cpu_and_autocast_kernels():
    for name in ("nms", "batched_nms", "roi_align", "roi_pool", "roi_crop", "sigmoid_focal_loss",
                 "softmax_focal_loss"):
        for key in ("CPU", "AutocastCPU", "AutocastCUDA"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"pydetectron::{name}", key)


def test_torch_export_keeps_the_ops():
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = ops.RoIAlign(3, spatial_scale=0.5, sampling_ratio=2)

        def forward(self, x, rois, boxes, scores):
            keep = ops.nms(boxes, scores, 0.5)
            return self.pool(x, rois).mean(dim=(2, 3)), boxes[keep]

    feature, rois = roi_args(torch.float32)
    boxes = torch.rand(20, 4) * 10
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(20)
    exported = torch.export.export(Head(), (feature, rois, boxes, scores))
    targets = {str(node.target) for node in exported.graph.nodes}
    assert {"pydetectron.nms.default", "pydetectron.roi_align.default"} <= targets
    for got, want in zip(exported.module()(feature, rois, boxes, scores),
                         Head()(feature, rois, boxes, scores)):
        assert torch.equal(got, want)
