"""Benchmark pydetectron's compiled ops against torchvision's in the same run.

Every case times both implementations on the same inputs, alternating which goes
first, and reports the median of the repeats. ratio = peer time / our time, so > 1
means pydetectron is faster. The peer is torchvision's op; for RoICrop and the softmax
focal loss, which torchvision lacks, it is the unfused PyTorch expression.

    python tools/benchmark_ops.py --threads 2 --repeats 7
    python tools/benchmark_ops.py --device cuda
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision

import pydetectron.ops as ops

IMAGE_H, IMAGE_W = 800, 1216


@dataclass
class Case:
    name: str
    ours: Callable[[], object]
    peer: Callable[[], object]
    peer_name: str = "torchvision"


def rpn_like_boxes(n: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposals as an RPN emits them: tight clusters of regressed anchors around
    objects of 16-512 px, plus scattered background boxes, with scores in (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    objects = max(n // 40, 1)
    size = torch.exp(torch.empty(objects, 1).uniform_(math.log(16), math.log(512), generator=g))
    aspect = torch.exp(torch.empty(objects, 1).uniform_(-0.7, 0.7, generator=g))
    wh = torch.cat([size * aspect.sqrt(), size / aspect.sqrt()], dim=1)
    centre = torch.rand(objects, 2, generator=g) * torch.tensor([IMAGE_W, IMAGE_H])
    pick = torch.randint(0, objects, (n,), generator=g)
    background = torch.rand(n, generator=g) < 0.2
    jitter = torch.where(background[:, None], 1.0, 0.12)
    box_centre = centre[pick] + torch.randn(n, 2, generator=g) * wh[pick] * jitter
    box_wh = wh[pick] * torch.exp(torch.randn(n, 2, generator=g) * 0.15)
    boxes = torch.cat([box_centre - box_wh / 2, box_centre + box_wh / 2], dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMAGE_W - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMAGE_H - 1)
    scores = torch.rand(n, generator=g)
    return boxes.to(device), scores.to(device)


def proposal_rois(n: int, device: str, seed: int = 1) -> torch.Tensor:
    """[n, 5] RoIs of one image: sizes 16-512 px (log-uniform), aspect 1:2 to 2:1."""
    g = torch.Generator().manual_seed(seed)
    size = torch.exp(torch.empty(n, 1).uniform_(math.log(16), math.log(512), generator=g))
    aspect = torch.exp(torch.empty(n, 1).uniform_(-0.7, 0.7, generator=g))
    wh = torch.cat([size * aspect.sqrt(), size / aspect.sqrt()], dim=1)
    centre = torch.rand(n, 2, generator=g) * torch.tensor([IMAGE_W, IMAGE_H])
    boxes = torch.cat([centre - wh / 2, centre + wh / 2], dim=1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, IMAGE_W - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, IMAGE_H - 1)
    return torch.cat([torch.zeros(n, 1), boxes], dim=1).to(device)


def forward_backward(function: Callable[[torch.Tensor], torch.Tensor], feature: torch.Tensor,
                     grad: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x = feature.detach().requires_grad_()
        function(x).backward(grad)

    return run


def crop_with_grid_sample(feature: torch.Tensor, rois: torch.Tensor, size: int,
                          scale: float) -> torch.Tensor:
    """RoICrop the way Detectron.pytorch did it: affine_grid + grid_sample (one image)."""
    height, width = feature.shape[-2:]
    x1, y1, x2, y2 = (rois[:, 1:] * scale).unbind(1)
    zero = torch.zeros_like(x1)
    theta = torch.stack([(x2 - x1) / (width - 1), zero, (x1 + x2 - width + 1) / (width - 1),
                         zero, (y2 - y1) / (height - 1), (y1 + y2 - height + 1) / (height - 1)],
                        dim=1).reshape(-1, 2, 3)
    grid = F.affine_grid(theta, [rois.shape[0], 1, size, size], align_corners=True)
    crops = F.grid_sample(feature, grid.reshape(1, -1, size, 2), align_corners=True)
    return crops.reshape(feature.shape[1], rois.shape[0], size, size).transpose(0, 1)


def retinanet_logits(anchors: int, classes: int, device: str, seed: int = 2):
    """Classification logits of a RetinaNet head near its prior (p = 0.01), with 1% of
    the anchors foreground, 10% ignored (-1) and the rest background; sigmoid targets
    one-hot [anchors, classes], softmax labels [anchors] over classes + 1."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(anchors, classes, generator=g) - 4.6
    draw = torch.rand(anchors, generator=g)
    labels = torch.randint(1, classes + 1, (anchors,), generator=g)
    labels = torch.where(draw < 0.01, labels, 0)
    labels = torch.where(draw > 0.9, -1, labels)
    targets = torch.zeros(anchors, classes)
    foreground = labels > 0
    targets[foreground, labels[foreground] - 1] = 1.0
    return logits.to(device), targets.to(device), labels.to(device)


def softmax_focal_unfused(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25,
                          gamma: float = 2.0) -> torch.Tensor:
    """Detectron's softmax focal loss (summed) as a plain PyTorch expression."""
    log_p = F.log_softmax(logits, dim=1).gather(1, labels.clamp(min=0)[:, None])[:, 0]
    weight = torch.where(labels > 0, alpha, 1 - alpha)
    loss = -weight * (1 - log_p.exp()) ** gamma * log_p
    return torch.where(labels >= 0, loss, 0).sum()


def focal_cases(device: str) -> list[Case]:
    cases = []
    for anchors in (120_000, 20_000):
        logits, targets, _ = retinanet_logits(anchors, 80, device)
        where = f"{anchors // 1000}k anchors x 80"
        one = torch.ones((), device=device)

        def ours(x, t=targets, r="sum"):
            return ops.sigmoid_focal_loss(x, t, reduction=r)

        def peer(x, t=targets, r="sum"):
            return torchvision.ops.sigmoid_focal_loss(x, t, reduction=r)

        cases.append(Case(f"sigmoid_focal_loss fwd {where}, sum",
                          lambda f=ours, x=logits: f(x), lambda f=peer, x=logits: f(x)))
        cases.append(Case(f"sigmoid_focal_loss fwd+bwd {where}, sum",
                          forward_backward(ours, logits, one), forward_backward(peer, logits, one)))
        if anchors == 120_000:
            grad = torch.ones_like(logits)
            cases.append(Case(f"sigmoid_focal_loss fwd+bwd {where}, none",
                              forward_backward(lambda x, f=ours: f(x, r="none"), logits, grad),
                              forward_backward(lambda x, f=peer: f(x, r="none"), logits, grad)))
    for anchors in (120_000, 20_000):
        logits, _, labels = retinanet_logits(anchors, 81, device)
        where = f"{anchors // 1000}k anchors x 81"
        one = torch.ones((), device=device)

        def soft(x, y=labels):
            return ops.softmax_focal_loss(x, y, reduction="sum")

        def soft_peer(x, y=labels):
            return softmax_focal_unfused(x, y)

        cases.append(Case(f"softmax_focal_loss fwd {where}, sum",
                          lambda f=soft, x=logits: f(x), lambda f=soft_peer, x=logits: f(x),
                          peer_name="unfused PyTorch"))
        cases.append(Case(f"softmax_focal_loss fwd+bwd {where}, sum",
                          forward_backward(soft, logits, one), forward_backward(soft_peer, logits, one),
                          peer_name="unfused PyTorch"))
    return cases


def nms_cases(device: str) -> list[Case]:
    cases = []
    for n in (1000, 6000, 12000, 30000):
        boxes, scores = rpn_like_boxes(n, device, seed=n)
        cases.append(Case(f"nms {n // 1000}k RPN boxes, IoU 0.7",
                          lambda b=boxes, s=scores: ops.nms(b, s, 0.7),
                          lambda b=boxes, s=scores: torchvision.ops.nms(b, s, 0.7)))
    for n in (1000, 10000):
        boxes, scores = rpn_like_boxes(n, device, seed=n + 1)
        idxs = torch.randint(0, 80, (n,), generator=torch.Generator().manual_seed(n)).to(device)
        cases.append(Case(f"batched_nms {n // 1000}k boxes, 80 classes, IoU 0.5",
                          lambda b=boxes, s=scores, i=idxs: ops.batched_nms(b, s, i, 0.5),
                          lambda b=boxes, s=scores, i=idxs: torchvision.ops.batched_nms(b, s, i,
                                                                                        0.5)))
    return cases


def roi_cases(device: str, num_rois: int, channels: int) -> list[Case]:
    rois = proposal_rois(num_rois, device)
    cases = []
    for stride in (4, 16):
        scale = 1.0 / stride
        feature = torch.randn(1, channels, IMAGE_H // stride, IMAGE_W // stride, device=device)
        grad = torch.randn(num_rois, channels, 7, 7, device=device)
        where = f"stride {stride} ({IMAGE_H // stride}x{IMAGE_W // stride})"
        for ratio in (2, 0):
            def ours(x, r=ratio, s=scale):
                return ops.roi_align(x, rois, 7, s, r, False)

            def peer(x, r=ratio, s=scale):
                return torchvision.ops.roi_align(x, rois, 7, s, r, False)

            cases.append(Case(f"roi_align fwd {where}, sampling {ratio}",
                              lambda f=ours, x=feature: f(x), lambda f=peer, x=feature: f(x)))
            cases.append(Case(f"roi_align fwd+bwd {where}, sampling {ratio}",
                              forward_backward(ours, feature, grad),
                              forward_backward(peer, feature, grad)))

        def pool(x, s=scale):
            return ops.roi_pool(x, rois, 7, s)

        def pool_peer(x, s=scale):
            return torchvision.ops.roi_pool(x, rois, 7, s)

        cases.append(Case(f"roi_pool fwd {where}", lambda f=pool, x=feature: f(x),
                          lambda f=pool_peer, x=feature: f(x)))
        cases.append(Case(f"roi_pool fwd+bwd {where}", forward_backward(pool, feature, grad),
                          forward_backward(pool_peer, feature, grad)))

        def crop(x, s=scale):
            return ops.roi_crop(x, rois, 7, s)

        def crop_peer(x, s=scale):
            return crop_with_grid_sample(x, rois, 7, s)

        cases.append(Case(f"roi_crop fwd+bwd {where}", forward_backward(crop, feature, grad),
                          forward_backward(crop_peer, feature, grad),
                          peer_name="affine_grid+grid_sample"))
    return cases


def time_once(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(case: Case, repeats: int, device: str) -> tuple[float, float]:
    """Median seconds of (ours, peer), alternating which runs first in each repeat."""
    case.ours()
    case.peer()
    ours, peer = [], []
    for r in range(repeats):
        if r % 2 == 0:
            ours.append(time_once(case.ours, device))
            peer.append(time_once(case.peer, device))
        else:
            peer.append(time_once(case.peer, device))
            ours.append(time_once(case.ours, device))
    return statistics.median(ours), statistics.median(peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--rois", type=int, default=512, help="RoIs for the RoI ops")
    parser.add_argument("--channels", type=int, default=256, help="feature channels")
    parser.add_argument("--only", default="", help="run cases whose name contains this text")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)

    cases = (nms_cases(args.device) + roi_cases(args.device, args.rois, args.channels)
             + focal_cases(args.device))
    cases = [c for c in cases if args.only in c.name]
    device_name = (torch.cuda.get_device_name() if args.device == "cuda"
                   else f"cpu, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {device_name}, "
          f"median of {args.repeats}")
    print("| case | pydetectron (ms) | peer (ms) | ratio (peer / ours) |")
    print("|---|---:|---:|---:|")
    for case in cases:
        ours, peer = measure(case, args.repeats, args.device)
        peer_note = "" if case.peer_name == "torchvision" else f" [{case.peer_name}]"
        print(f"| {case.name}{peer_note} | {ours * 1e3:.2f} | {peer * 1e3:.2f} | "
              f"{peer / ours:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
