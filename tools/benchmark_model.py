"""Whole-model benchmark: pydetectron against torchvision's same model, same weights, same input.

Faster and Mask R-CNN R-50-FPN: our model is built from configs/torchvision/<model>.yaml
and loads a torchvision state dict (the setup of tests/modeling/test_torchvision_parity.py),
so both sides compute the same detections from the same uint8 image. Inference goes
through `pydetectron.Predictor` (norms folded, as users get it) and through torchvision's
model called as its users call it (RGB float in [0, 1]); a training step is preprocessing,
forward, backward and an SGD step on a batch of 2 images with the same ground truth, with
torchvision built as its pretrained-backbone models are (FrozenBatchNorm2d, stem and layer1
frozen), which is also what the preset does.

Each run of one side is its own process: it builds the model, runs `--warmup` untimed
iterations and `--iters` timed ones, and reports wall and CPU time per iteration, per-stage
times (forward hooks), page faults and peak RSS. Rounds alternate which side goes first;
the summary gives medians over rounds. The parent process does not import torch, so the
children's peak RSS is theirs alone.

    python tools/benchmark_model.py                        # both models, inference + train
    python tools/benchmark_model.py --busy 2               # with two CPU-bound processes running
    python tools/benchmark_model.py --models faster --modes inference --rounds 5
    python tools/benchmark_model.py --bodies --size 512x768   # ResNet-50 body per norm kind (GN vs BN)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"faster": "fasterrcnn_resnet50_fpn.yaml", "mask": "maskrcnn_resnet50_fpn.yaml"}
SIDES = ("pydetectron", "torchvision")
STAGES = ("preprocess", "body", "fpn", "rpn", "rpn_targets", "roi_heads", "postprocess", "backward", "optimizer")
TRAIN_BATCH = 2
BODY_NORMS = ("FrozenBN", "AffineChannel", "BN", "GN")


# --------------------------------------------------------------------------- children


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _torchvision_inference_model(kind: str, peer_norm: str):
    """torchvision's model as `weights=None` builds it (eval BatchNorm2d, one fused kernel per
    norm) or, with peer_norm='frozen', as pretrained weights build it (FrozenBatchNorm2d)."""
    from torchvision.models import detection
    from torchvision.ops import misc

    builder = detection.fasterrcnn_resnet50_fpn if kind == "faster" else detection.maskrcnn_resnet50_fpn
    model = builder(weights=None, weights_backbone=None)
    if peer_norm == "frozen":
        _freeze_torchvision_bn(model.backbone.body, misc.FrozenBatchNorm2d)
    return model


def _freeze_torchvision_bn(module, frozen_cls) -> None:
    import torch

    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            setattr(module, name, frozen_cls(child.num_features, eps=child.eps))
        else:
            _freeze_torchvision_bn(child, frozen_cls)


def _torchvision_train_model(kind: str):
    """torchvision as it trains from a pretrained backbone: FrozenBatchNorm2d, layers 2-4 trainable."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc

    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=misc.FrozenBatchNorm2d), 3)
    return (FasterRCNN if kind == "faster" else MaskRCNN)(backbone, num_classes=91)


def make_weights(kind: str, path: str) -> None:
    """A random torchvision state dict whose model gives real detections (as the parity test)."""
    import torch

    torch.manual_seed(0)
    model = _torchvision_inference_model(kind, "bn")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.0)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.roi_heads.box_predictor.cls_score.weight.normal_(0, 0.5)
        model.roi_heads.box_predictor.bbox_pred.weight.normal_(0, 0.01)
    torch.save(model.state_dict(), path)


def test_image(height: int, width: int, seed: int = 0):
    """A deterministic uint8 BGR image: smooth blobs plus noise (so the RPN sees structure)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = rng.normal(110, 25, size=(height, width, 3)).astype(np.float32)
    for _ in range(12):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(height / 25, height / 4), rng.uniform(width / 25, width / 4)
        inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
        image[inside] = rng.uniform(0, 255, size=3)
    return np.clip(image, 0, 255).astype(np.uint8)


def ground_truth(height: int, width: int, seed: int, count: int = 8):
    """(boxes [G, 4] float32, classes [G] int64 in 1..90, masks [G, H, W] uint8 ellipses)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    image_size = torch.tensor([width, height], dtype=torch.float32)
    size = torch.empty(count, 2).uniform_(0.06, 0.4, generator=g) * image_size
    corner = torch.rand(count, 2, generator=g) * (image_size - size)
    boxes = torch.cat((corner, corner + size), dim=1).floor()
    classes = torch.randint(1, 91, (count,), generator=g)
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)[None, :]
    masks = torch.zeros(count, height, width, dtype=torch.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        masks[i] = (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1).to(torch.uint8)
    return boxes, classes, masks


class StageTimer:
    """Wall time of module forwards (hooks) and of explicitly timed blocks, per stage."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._starts: dict[str, float] = {}

    def reset(self) -> None:
        self.times = {}

    def add(self, stage: str, seconds: float) -> None:
        self.times[stage] = self.times.get(stage, 0.0) + seconds

    def hook(self, module, stage: str) -> None:
        def before(_module, _inputs):
            self._starts[stage] = time.perf_counter()

        def after(_module, _inputs, _output):
            self.add(stage, time.perf_counter() - self._starts.pop(stage))

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    def wrap(self, owner, attribute: str, stage: str) -> None:
        """Time calls of `owner.attribute` (a function or method) under `stage`."""
        function = getattr(owner, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)

        setattr(owner, attribute, timed)


def _ours_cfg(kind: str):
    from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file

    cfg = get_cfg()
    merge_cfg_from_file(str(REPO / "configs" / "torchvision" / PRESETS[kind]), target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


def _hook_ours(model, timer: StageTimer) -> None:
    timer.hook(model.body.backbone, "body")
    timer.hook(model.body.neck, "fpn")
    timer.hook(model.rpn, "rpn")
    timer.hook(model.roi_heads, "roi_heads")
    # anchor labels, sampling and box targets (part of "rpn"; training only)
    timer.wrap(model.rpn, "target_assigner", "rpn_targets")


def _hook_torchvision(model, timer: StageTimer) -> None:
    timer.hook(model.transform, "preprocess")
    timer.hook(model.backbone.body, "body")
    timer.hook(model.backbone.fpn, "fpn")
    timer.hook(model.rpn, "rpn")
    timer.hook(model.roi_heads, "roi_heads")
    timer.wrap(model.transform, "postprocess", "postprocess")
    for attribute in ("assign_targets_to_anchors", "fg_bg_sampler"):  # our "rpn_targets"
        timer.wrap(model.rpn, attribute, "rpn_targets")
    timer.wrap(model.rpn.box_coder, "encode", "rpn_targets")


def ours_inference(kind: str, weights: str, image, timer: StageTimer, fold: bool):
    """A function running one image through `Predictor` (returns the number of detections)."""
    import pydetectron.engine.predictor as predictor_module
    from pydetectron import Predictor

    predictor = Predictor(_ours_cfg(kind), weights, device="cpu", fold_norms=fold)
    _hook_ours(predictor.model, timer)
    timer.hook(predictor.model, "model")
    timer.wrap(predictor_module, "to_prediction", "postprocess")

    def run() -> int:
        start = time.perf_counter()
        prediction = predictor(image)
        total = time.perf_counter() - start
        # everything outside the model and `to_prediction`: input checks, resize, normalise, pad
        model_time = timer.times.pop("model", 0.0)
        timer.add("preprocess", total - model_time - timer.times.get("postprocess", 0.0))
        return len(prediction)

    return run


def torchvision_inference(kind: str, weights: str, image, timer: StageTimer, peer_norm: str):
    import torch

    model = _torchvision_inference_model(kind, peer_norm)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    _hook_torchvision(model, timer)

    def run() -> int:
        start = time.perf_counter()
        rgb = torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1).float().div_(255.0)
        timer.add("preprocess", time.perf_counter() - start)
        with torch.no_grad():
            output = model([rgb])[0]
        start = time.perf_counter()
        _ = output["boxes"].numpy(), output["scores"].numpy(), output["labels"].numpy()
        if "masks" in output:
            _ = (output["masks"][:, 0] > 0.5).numpy()
        timer.add("postprocess", time.perf_counter() - start)
        return int(output["scores"].numel())

    return run


def _optimizer(model):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)


def ours_train(kind: str, weights: str, images, truths, timer: StageTimer):

    from pydetectron.engine.inference import InputTransform
    from pydetectron.modeling import build_model
    from pydetectron.structures.ground_truth import GroundTruth
    from pydetectron.weights import load_weights

    cfg = _ours_cfg(kind)
    model = build_model(cfg)
    load_weights(model, weights, cfg)
    model.train()
    _hook_ours(model, timer)
    optimizer = _optimizer(model)
    transform = InputTransform(
        target_size=int(cfg.TRAIN.SCALES[0]),
        max_size=int(cfg.TRAIN.MAX_SIZE),
        pixel_means=tuple(cfg.PIXEL_MEANS),
        pixel_stds=tuple(cfg.PIXEL_STDS),
        input_format=str(cfg.INPUT_FORMAT),
        size_divisibility=int(cfg.FPN.COARSEST_STRIDE),
        resize=str(cfg.INPUT_RESIZE),
    )

    def run() -> int:
        start = time.perf_counter()
        data, im_info = transform.batch([transform(image) for image in images])
        targets = []
        for (boxes, classes, masks), info in zip(truths, im_info):
            scale = float(info[2])
            targets.append(GroundTruth(boxes * scale, classes, masks=masks if kind == "mask" else None))
        timer.add("preprocess", time.perf_counter() - start)
        losses = model(data, im_info, targets)
        loss = sum(value for name, value in losses.items() if name.startswith("loss"))
        _timed_update(loss, optimizer, timer)
        return len(losses)

    return run


def _timed_update(loss, optimizer, timer: StageTimer) -> None:
    """Backward and optimizer step, each timed; a non-finite loss stops the benchmark."""
    import torch

    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    timer.add("backward", time.perf_counter() - start)
    start = time.perf_counter()
    optimizer.step()
    timer.add("optimizer", time.perf_counter() - start)
    if not torch.isfinite(loss):
        raise RuntimeError(f"non-finite loss {loss.item()}")


def torchvision_train(kind: str, weights: str, images, truths, timer: StageTimer):
    import torch

    model = _torchvision_train_model(kind)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.train()
    _hook_torchvision(model, timer)
    optimizer = _optimizer(model)

    def run() -> int:
        start = time.perf_counter()
        inputs = [torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1).float().div_(255.0) for image in images]
        targets = []
        for boxes, classes, masks in truths:
            target = {"boxes": boxes, "labels": classes}
            if kind == "mask":
                target["masks"] = masks
            targets.append(target)
        timer.add("preprocess", time.perf_counter() - start)
        losses = model(inputs, targets)
        loss = sum(losses.values())
        _timed_update(loss, optimizer, timer)
        return len(losses)

    return run


def _status_kib(field: str) -> int:
    """A `VmHWM`-style field of /proc/self/status in KiB (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM) of this process; False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_child(args) -> dict:
    import resource

    import torch

    _set_threads(args.threads)
    torch.manual_seed(0)
    height, width = args.height, args.width
    timer = StageTimer()
    load_before = os.getloadavg()
    if args.mode == "inference":
        image = test_image(height, width)
        if args.side == "pydetectron":
            run = ours_inference(args.model, args.weights, image, timer, fold=not args.no_fold)
        else:
            run = torchvision_inference(args.model, args.weights, image, timer, args.peer_norm)
    else:
        images = [test_image(height, width, seed=i) for i in range(TRAIN_BATCH)]
        truths = [ground_truth(height, width, seed=i) for i in range(TRAIN_BATCH)]
        if args.side == "pydetectron":
            run = ours_train(args.model, args.weights, images, truths, timer)
        else:
            run = torchvision_train(args.model, args.weights, images, truths, timer)
    for _ in range(args.warmup):
        run()
    setup_peak_mb = _status_kib("VmHWM") / 1024
    reset = _reset_peak_rss()
    iterations = []
    for _ in range(args.iters):
        timer.reset()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        count = run()
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        iterations.append(
            {
                "wall": wall,
                "cpu": (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime),
                "minor_faults": after.ru_minflt - usage.ru_minflt,
                "stages": dict(timer.times),
                "count": count,
            }
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "side": args.side,
        "model": args.model,
        "mode": args.mode,
        "threads": torch.get_num_threads(),
        "iterations": iterations,
        "peak_rss_mb": max(setup_peak_mb, _status_kib("VmHWM") / 1024),
        "run_peak_rss_mb": _status_kib("VmHWM") / 1024 if reset else None,
        "ru_maxrss_mb": usage.ru_maxrss / 1024,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "torch": torch.__version__,
    }


def run_body_child(args) -> dict:
    """ResNet-50 body (stem to res5, freeze_at=2) with one norm kind: CPU and wall seconds of
    an eval forward and of a training forward + backward, per timed iteration."""
    import torch

    from pydetectron.modeling.backbones import ResNetBody

    _set_threads(args.threads)
    torch.manual_seed(0)
    body = ResNetBody((3, 4, 6, 3), norm=args.norm, freeze_at=2, out_features=["res2", "res3", "res4", "res5"])
    x = torch.randn(TRAIN_BATCH, 3, args.height, args.width)

    def inference() -> None:
        body.eval()
        with torch.no_grad():
            body(x)

    def train() -> None:
        body.train()
        sum(feature.float().mean() for feature in body(x).values()).backward()

    out = {"side": args.norm, "load_before": os.getloadavg()}
    for name, step in (("inference", inference), ("train", train)):
        for _ in range(args.warmup):
            step()
        walls, cpus = [], []
        for _ in range(args.iters):
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        out[name] = {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}
    out["load_after"] = os.getloadavg()
    return out


def run_bodies(args) -> list[dict]:
    """Every norm kind's body in its own processes, the order reversed every other round;
    prints each kind's medians over rounds beside FrozenBN's."""
    runs = []
    for round_index in range(args.rounds):
        order = BODY_NORMS if round_index % 2 == 0 else BODY_NORMS[::-1]
        for norm in order:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", "body", "--norm", norm]
            command += ["--threads", str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters)]
            command += ["--size", f"{args.height}x{args.width}"]
            result = _run(command)
            runs.append(result)
            print(
                f"  body {norm} round {round_index}: inference {result['inference']['wall']:.2f} s, "
                f"train {result['train']['wall']:.2f} s (load {result['load_after'][0]:.1f})",
                flush=True,
            )
    medians = {
        norm: {
            f"{mode} {clock}": _median([r[mode][clock] for r in runs if r["side"] == norm])
            for mode in ("inference", "train")
            for clock in ("wall", "cpu")
        }
        for norm in BODY_NORMS
    }
    base = medians["FrozenBN"]
    print(f"\n### ResNet-50 body, batch {TRAIN_BATCH} at {args.height}x{args.width}: medians (s), ratio to FrozenBN")
    columns = list(base)
    print("| norm | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for norm in BODY_NORMS:
        cells = [f"{medians[norm][c]:.2f} ({medians[norm][c] / base[c]:.2f}x)" for c in columns]
        print(f"| {norm} | " + " | ".join(cells) + " |")
    return runs


# --------------------------------------------------------------------------- parent


def _child_command(args, side: str, model: str, mode: str, weights: str) -> list[str]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "run",
        "--side",
        side,
        "--model",
        model,
        "--mode",
        mode,
        "--weights",
        weights,
        "--threads",
        str(args.threads),
        "--warmup",
        str(args.warmup),
        "--iters",
        str(args.iters),
        "--size",
        f"{args.height}x{args.width}",
        "--peer-norm",
        args.peer_norm,
    ]
    if args.no_fold:
        command.append("--no-fold")
    return command


def _run(command: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "lib"), env.get("PYTHONPATH", "")]))
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_busy(count: int) -> list[subprocess.Popen]:
    """`count` CPU-bound processes (a Python busy loop each), the issue's "busy" machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop_busy(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: list[dict]) -> dict:
    """Per side: median over processes of each process's median iteration."""
    out = {}
    for side in SIDES:
        mine = [r for r in runs if r["side"] == side]
        walls = [_median([it["wall"] for it in r["iterations"]]) for r in mine]
        cpus = [_median([it["cpu"] for it in r["iterations"]]) for r in mine]
        faults = [_median([it["minor_faults"] for it in r["iterations"]]) for r in mine]
        stages = {}
        for stage in STAGES:
            values = [_median([it["stages"].get(stage, 0.0) for it in r["iterations"]]) for r in mine]
            if any(values):
                stages[stage] = _median(values)
        out[side] = {
            "wall": _median(walls),
            "wall_all": walls,
            "cpu": _median(cpus),
            "minor_faults": _median(faults),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
            "run_peak_rss_mb": max((r["run_peak_rss_mb"] or 0.0) for r in mine),
            "stages": stages,
            "counts": sorted({it["count"] for r in mine for it in r["iterations"]}),
        }
    return out


def print_summary(model: str, mode: str, summary: dict, file=sys.stdout) -> None:
    ours, peer = summary["pydetectron"], summary["torchvision"]
    ratio = peer["wall"] / ours["wall"]
    print(f"\n### {model} R-CNN R-50-FPN, {mode}", file=file)
    print("| | pydetectron | torchvision | ratio (tv / ours) |", file=file)
    print("|---|---:|---:|---:|", file=file)
    print(f"| wall time (s, median) | {ours['wall']:.2f} | {peer['wall']:.2f} | {ratio:.2f} |", file=file)
    print(
        f"| CPU time (s, median) | {ours['cpu']:.2f} | {peer['cpu']:.2f} | {peer['cpu'] / ours['cpu']:.2f} |",
        file=file,
    )
    print(
        f"| peak RSS, whole process (MB) | {ours['peak_rss_mb']:.0f} | {peer['peak_rss_mb']:.0f} | "
        f"{peer['peak_rss_mb'] / ours['peak_rss_mb']:.2f} |",
        file=file,
    )
    if ours["run_peak_rss_mb"] and peer["run_peak_rss_mb"]:
        print(
            f"| peak RSS, timed iterations (MB) | {ours['run_peak_rss_mb']:.0f} | {peer['run_peak_rss_mb']:.0f} | "
            f"{peer['run_peak_rss_mb'] / ours['run_peak_rss_mb']:.2f} |",
            file=file,
        )
    print(
        f"| minor page faults per iteration | {ours['minor_faults']:.0f} | {peer['minor_faults']:.0f} | "
        f"{peer['minor_faults'] / max(ours['minor_faults'], 1):.2f} |",
        file=file,
    )
    for stage in STAGES:
        if stage in ours["stages"] or stage in peer["stages"]:
            a, b = ours["stages"].get(stage, 0.0), peer["stages"].get(stage, 0.0)
            print(f"| {stage} (s) | {a:.3f} | {b:.3f} | {b / a if a else float('nan'):.2f} |", file=file)
    print(
        f"\nper-round wall times: pydetectron {[round(w, 2) for w in ours['wall_all']]}, "
        f"torchvision {[round(w, 2) for w in peer['wall_all']]}; "
        f"detections/losses per iteration: {ours['counts']} vs {peer['counts']}",
        file=file,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(PRESETS), default=["faster", "mask"])
    parser.add_argument("--modes", nargs="+", choices=["inference", "train"], default=["inference", "train"])
    parser.add_argument("--rounds", type=int, default=3, help="processes per side (alternating order)")
    parser.add_argument("--iters", type=int, default=2, help="timed iterations per process")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations per process")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on both sides")
    parser.add_argument("--size", default="800x1216", help="image HxW (uint8); 800x1216 needs no resize")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes to run meanwhile")
    parser.add_argument(
        "--peer-norm",
        choices=["bn", "frozen"],
        default="bn",
        help="torchvision inference norms: eval BatchNorm2d (weights=None, fused kernel) or FrozenBatchNorm2d",
    )
    parser.add_argument("--no-fold", action="store_true", help="run our inference without folding the norms")
    parser.add_argument("--json", help="write every run's raw numbers here")
    parser.add_argument(
        "--bodies",
        action="store_true",
        help="instead: the ResNet-50 body alone with each norm kind (FrozenBN, AffineChannel, BN, GN)",
    )
    parser.add_argument("--child", choices=["run", "weights", "body"], help=argparse.SUPPRESS)
    parser.add_argument("--norm", choices=BODY_NORMS, help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(PRESETS), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["inference", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.height, args.width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be HxW, got {args.size!r}")

    if args.child == "weights":
        make_weights(args.model, args.weights)
        return 0
    if args.child == "run":
        print(json.dumps(run_child(args)))
        return 0
    if args.child == "body":
        print(json.dumps(run_body_child(args)))
        return 0

    print(f"load average before: {os.getloadavg()}; CPUs: {os.cpu_count()}; threads per side: {args.threads}")
    busy = start_busy(args.busy)
    if busy:
        print(f"started {len(busy)} CPU-bound processes")
    all_runs = []
    try:
        if args.bodies:
            all_runs = run_bodies(args)
        with tempfile.TemporaryDirectory() as tmp:
            for model in [] if args.bodies else args.models:
                weights = os.path.join(tmp, f"{model}.pth")
                _run_weights(model, weights)
                for mode in args.modes:
                    runs = []
                    for round_index in range(args.rounds):
                        order = SIDES if round_index % 2 == 0 else SIDES[::-1]
                        for side in order:
                            result = _run(_child_command(args, side, model, mode, weights))
                            runs.append(result)
                            walls = ", ".join(f"{it['wall']:.2f}" for it in result["iterations"])
                            print(
                                f"  {model} {mode} round {round_index} {side}: {walls} s "
                                f"(load {result['load_after'][0]:.1f})",
                                flush=True,
                            )
                    all_runs.extend(runs)
                    print_summary(model, mode, summarise(runs))
    finally:
        stop_busy(busy)
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(all_runs, indent=1))
    return 0


def _run_weights(model: str, path: str) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "weights", "--model", model, "--weights", path]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "lib"), env.get("PYTHONPATH", "")]))
    subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    sys.exit(main())
