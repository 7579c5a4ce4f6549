"""tools/benchmark_model.py: stage timing, summaries and inputs (the models themselves are not run)."""

import importlib.util
import io
from pathlib import Path

import torch
from torch import nn

TOOL = Path(__file__).resolve().parents[2] / "tools" / "benchmark_model.py"
spec = importlib.util.spec_from_file_location("benchmark_model", TOOL)
benchmark_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_model)


def _run(side, wall, stages, rss, faults=100, count=5):
    iteration = {"wall": wall, "cpu": wall * 2, "minor_faults": faults, "stages": stages, "count": count}
    return {"side": side, "iterations": [iteration], "peak_rss_mb": rss, "run_peak_rss_mb": rss - 10}


def test_summary_takes_medians_per_side_and_prints_ratios():
    runs = [
        _run("pydetectron", 2.0, {"body": 1.0}, 900),
        _run("torchvision", 3.0, {"body": 1.5}, 1000),
        _run("torchvision", 3.3, {"body": 1.6}, 1100),
        _run("pydetectron", 2.2, {"body": 1.2}, 950),
        _run("pydetectron", 9.0, {"body": 5.0}, 920),  # an outlier round
        _run("torchvision", 3.1, {"body": 1.7}, 1050),
    ]
    summary = benchmark_model.summarise(runs)
    assert summary["pydetectron"]["wall"] == 2.2 and summary["torchvision"]["wall"] == 3.1
    assert summary["pydetectron"]["stages"]["body"] == 1.2
    assert summary["pydetectron"]["peak_rss_mb"] == 950 and summary["torchvision"]["peak_rss_mb"] == 1100
    out = io.StringIO()
    benchmark_model.print_summary("faster", "inference", summary, file=out)
    text = out.getvalue()
    assert "| wall time (s, median) | 2.20 | 3.10 | 1.41 |" in text
    assert "| body (s) | 1.200 | 1.600 | 1.33 |" in text


def test_stage_timer_hooks_and_wraps():
    timer = benchmark_model.StageTimer()
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    timer.hook(model[0], "body")

    class Owner:
        @staticmethod
        def post(x):
            return x * 2

    timer.wrap(Owner, "post", "postprocess")
    model(torch.zeros(2, 4))
    model(torch.zeros(2, 4))
    assert Owner.post(3) == 6
    assert set(timer.times) == {"body", "postprocess"} and timer.times["body"] > 0
    timer.reset()
    assert timer.times == {}


def test_inputs_are_deterministic_and_well_formed():
    a, b = benchmark_model.test_image(64, 96), benchmark_model.test_image(64, 96)
    assert a.shape == (64, 96, 3) and a.dtype.name == "uint8" and (a == b).all()
    boxes, classes, masks = benchmark_model.ground_truth(200, 300, seed=1, count=4)
    assert boxes.shape == (4, 4) and classes.shape == (4,) and masks.shape == (4, 200, 300)
    assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes[:, 2] <= 300).all() and (boxes[:, 3] <= 200).all()
    assert ((classes >= 1) & (classes <= 90)).all()
    for box, mask in zip(boxes.long().tolist(), masks):  # each mask lies inside its box
        x1, y1, x2, y2 = box
        assert mask.sum() > 0 and mask[y1 : y2 + 1, x1 : x2 + 1].sum() == mask.sum()
