"""tools/train_net_step.py end to end on the CPU: a tiny shapes run, its files, its checkpoint, resuming."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tool_test_support import direct_ap

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_cfg
from pydetectron.data.catalog import unregister_dataset
from pydetectron.data.shapes import write_shapes_dataset
from pydetectron.engine.checkpoint import Checkpointer, load_checkpoint
from pydetectron.engine.cli import UsageError
from pydetectron.engine.predictor import Predictor
from pydetectron.modeling.model_builder import build_model
from pydetectron.weights import load_weights

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "train_net_step.py"
CONFIG = ROOT / "configs" / "baselines" / "e2e_faster_rcnn_R-50-FPN_1x.yaml"

# A small R-50-FPN on 64 px images (frozen AffineChannel body, gradient clipping). The config's
# batch is NUM_GPUS 1 x IMS_PER_BATCH 1; the run uses --bs 2, so the tool must turn MAX_ITER 48
# into 24, STEPS [0, 36] into [0, 18] and BASE_LR 0.0025 into 0.005. iter_size is tested in
# tests/engine/test_trainer.py.
TINY = [
    "NUM_GPUS", "1", "TRAIN.IMS_PER_BATCH", "1",
    "SOLVER.BASE_LR", "0.0025", "SOLVER.MAX_ITER", "48", "SOLVER.STEPS", "[0, 36]", "SOLVER.WARM_UP_ITERS", "4",
    "SOLVER.CLIP_GRAD_NORM", "5.0", "TRAIN.SNAPSHOT_ITERS", "8",
    "TRAIN.SCALES", "(64,)", "TRAIN.MAX_SIZE", "96", "TRAIN.BATCH_SIZE_PER_IM", "32",
    "TRAIN.RPN_BATCH_SIZE_PER_IM", "64", "TRAIN.RPN_PRE_NMS_TOP_N", "100", "TRAIN.RPN_POST_NMS_TOP_N", "50",
    "FPN.DIM", "32", "FAST_RCNN.MLP_HEAD_DIM", "32", "RNG_SEED", "7", "TRAIN.WEIGHTS", "",
    "TEST.SCALE", "64", "TEST.MAX_SIZE", "96", "TEST.RPN_PRE_NMS_TOP_N", "100", "TEST.RPN_POST_NMS_TOP_N", "50",
]  # fmt: skip


def command(data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(TOOL), "--dataset", "shapes", "--cfg", str(CONFIG), "--no_cuda", "--bs", "2",
        "--nw", "0", "--disp_interval", "1", "--output_dir", str(output_dir), *extra,
        "--set", "DATA_DIR", str(data_dir), *TINY,
    ]  # fmt: skip


def run_tool(data_dir: Path, output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    process = subprocess.run(command(data_dir, output_dir, *extra), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process


def metrics(output_dir: Path, kind: str = "loss") -> dict[int, dict]:
    """The metrics.jsonl lines holding `kind` ('loss': training lines, 'bbox/AP': evaluations) by step."""
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return {entry["step"]: entry for entry in map(json.loads, lines) if kind in entry}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """24 steps (--nw 0) with box AP on a 4-image shapes_val after steps 11 and 23."""
    data_dir = tmp_path_factory.mktemp("data")
    write_shapes_dataset(data_dir / "shapes" / "shapes_train", 12, seed=0, min_side=64, max_side=112)
    write_shapes_dataset(data_dir / "shapes" / "shapes_val", 4, seed=1, min_side=64, max_side=112)
    output_dir = tmp_path_factory.mktemp("run")
    process = run_tool(data_dir, output_dir, "--use_tfboard", "--eval_period", "12")
    return data_dir, output_dir, process


@pytest.mark.slow
def test_tiny_shapes_run_adapts_the_schedule_and_writes_its_files(first_run):
    _, output_dir, process = first_run
    assert "SOLVER.MAX_ITER: 48 --> 24" in process.stdout
    assert "BASE_LR linearly with the effective batch size: 0.0025 --> 0.005" in process.stdout
    saved_cfg = yaml.safe_load((output_dir / "config.yaml").read_text())
    assert saved_cfg["SOLVER"]["STEPS"] == [0, 18] and saved_cfg["SOLVER"]["MAX_ITER"] == 24
    assert saved_cfg["TRAIN"]["IMS_PER_BATCH"] == 2 and saved_cfg["MODEL"]["NUM_CLASSES"] == 5
    ckpt_names = sorted(p.name for p in (output_dir / "ckpt").iterdir())
    assert ckpt_names == ["last_checkpoint", "model_best.pth", "model_step15.pth", "model_step23.pth",
                          "model_step7.pth"]  # fmt: skip
    logged = metrics(output_dir)
    assert sorted(logged) == list(range(24))
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logged.values())
    assert logged[0]["lr"] == pytest.approx(0.005 / 3) and logged[18]["lr"] == pytest.approx(0.0005)
    assert logged[23]["loss"] < logged[0]["loss"]
    assert {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls", "memory_mb", "eta_seconds",
            "grad_norm"} <= set(logged[23])
    assert list(output_dir.glob("events.out.tfevents.*"))
    assert "step 23/24" in process.stdout


@pytest.mark.slow
def test_checkpoint_loads_into_a_model_built_from_its_own_config(first_run):
    _, output_dir, _ = first_run
    checkpoint = torch.load(output_dir / "ckpt" / "model_step23.pth", weights_only=True)
    assert checkpoint["step"] == 23 and checkpoint["batch_size"] == 2
    cfg = get_cfg()
    merge_cfg_from_cfg(yaml.safe_load(checkpoint["cfg"]), target=cfg)
    assert_and_infer_cfg(target=cfg)
    model = build_model(cfg)
    report = load_weights(model, output_dir / "ckpt" / "model_step23.pth")
    assert report.missing == [] and report.unused == []
    for name, value in model.state_dict().items():
        assert torch.equal(value, checkpoint["model"][name]), name


@pytest.mark.slow
def test_resume_through_the_tool_repeats_the_losses(first_run, tmp_path):
    data_dir, output_dir, _ = first_run
    run_tool(data_dir, tmp_path, "--resume", "--load_ckpt", str(output_dir / "ckpt" / "model_step15.pth"))
    resumed, original = metrics(tmp_path), metrics(output_dir)
    assert sorted(resumed) == list(range(16, 24))
    keys = ("loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls", "lr")
    for step in range(16, 24):
        assert [resumed[step][k] for k in keys] == [original[step][k] for k in keys], step
    final = torch.load(tmp_path / "ckpt" / "model_step23.pth", weights_only=True)["model"]
    expected = torch.load(output_dir / "ckpt" / "model_step23.pth", weights_only=True)["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def load_tool_module():
    spec = importlib.util.spec_from_file_location("train_net_step", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tool():
    yield load_tool_module()
    for name in ("my_set", "other"):
        unregister_dataset(name)


def test_dataset_flag_forms(tool, tmp_path):
    args = tool.parse_args(["--dataset", "coco2017", "--cfg", str(CONFIG)])
    assert tool.resolve_datasets(args) == (("coco_2017_train",), ("coco_2017_val",))
    args = tool.parse_args(["--dataset", "shapes_train,shapes_val", "--cfg", str(CONFIG)])
    assert tool.resolve_datasets(args) == (("shapes_train", "shapes_val"), ("shapes_train",))
    spec = f"my_set={tmp_path / 'a.json'}:{tmp_path / 'images'}"
    args = tool.parse_args(["--dataset", spec, "--cfg", str(CONFIG)])
    assert tool.resolve_datasets(args) == (("my_set",), ("my_set",))
    args = tool.parse_args(
        ["--dataset", "other", "--dataset_json", "b.json", "--image_dir", "imgs", "--cfg", str(CONFIG)]
    )
    assert tool.resolve_datasets(args) == (("other",), ("other",))
    with pytest.raises(UsageError, match="unknown dataset"):
        tool.resolve_datasets(tool.parse_args(["--dataset", "no_such_set", "--cfg", str(CONFIG)]))
    with pytest.raises(UsageError, match="--resume needs --load_ckpt"):
        tool.resume_path_for(tool.parse_args(["--dataset", "shapes", "--cfg", str(CONFIG), "--resume"]))


def test_load_detectron_reports_clearly(tool, tmp_path):
    pkl = tmp_path / "model_final.pkl"
    pkl.write_bytes(b"not a pickle")
    args = tool.parse_args(["--dataset", "shapes", "--cfg", str(CONFIG), "--load_detectron", str(pkl)])
    with pytest.raises(UsageError, match="^--load_detectron: "):
        tool.initialise_weights(torch.nn.Linear(2, 2), args, get_cfg(), resuming=False)
    with pytest.raises(UsageError, match="--resume is not supported with --load_detectron"):
        tool.resume_path_for(
            tool.parse_args(["--dataset", "s", "--cfg", str(CONFIG), "--load_detectron", "a", "--resume"])
        )


@pytest.mark.slow
def test_eval_period_logs_ap_and_keeps_the_best_checkpoint(first_run):
    data_dir, output_dir, process = first_run
    evaluations = metrics(output_dir, "bbox/AP")
    assert sorted(evaluations) == [11, 23]
    assert set(evaluations[23]) == {"step", "bbox/AP", "bbox/AP50", "bbox/AP75", "bbox/APs", "bbox/APm", "bbox/APl"}
    assert "Evaluation at step 11 (fractions of 1): bbox/AP" in process.stdout
    # the logged AP of the last evaluation is pycocotools' on the results it wrote
    json_file = data_dir / "shapes" / "shapes_val" / "annotations.json"
    results_file = output_dir / "eval" / "shapes_val" / "bbox_shapes_val_results.json"
    expected = direct_ap(json_file, results_file)
    assert {k: evaluations[23][f"bbox/{k}"] for k in expected} == pytest.approx(expected)
    # the best checkpoint: the first evaluation with the highest AP, with its config and weights
    best = load_checkpoint(output_dir / "ckpt" / "model_best.pth")
    best_step = max(sorted(evaluations), key=lambda step: evaluations[step]["bbox/AP"])
    assert best["step"] == best_step and best["best_metric"] == "bbox/AP"
    assert best["best_value"] == evaluations[best_step]["bbox/AP"]
    if best_step == 23:
        final = load_checkpoint(output_dir / "ckpt" / "model_step23.pth")["model"]
        assert all(torch.equal(best["model"][k], final[k]) for k in final)
    hook_state = load_checkpoint(output_dir / "ckpt" / "model_step23.pth")["hooks"]["EvaluationHook"]
    assert hook_state["best_step"] == best_step
    events = next(output_dir.glob("events.out.tfevents.*")).read_bytes()
    assert b"bbox/AP50" in events
    predictor = Predictor.from_checkpoint(output_dir / "ckpt" / "model_best.pth", device="cpu")
    assert all(torch.equal(v, best["model"][k]) for k, v in predictor.model.state_dict().items())


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_two_workers_saves_and_resumes_exactly(first_run, tmp_path):
    """SIGTERM to the tool and its 2 loader workers (as `timeout` or a job scheduler sends it)."""
    data_dir, reference_dir, _ = first_run
    output_dir = tmp_path / "run"
    log_path = tmp_path / "log.txt"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command(data_dir, output_dir, "--nw", "2"), cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 600
        while "step 2/24" not in log_path.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=600)
    text = log_path.read_text()
    assert "Data loading workers: 2" in text
    assert returncode == 128 + signal.SIGTERM, text[-3000:]
    assert "SIGTERM received: stopping after the current step" in text
    assert "DataLoader worker" not in text and "Traceback" not in text
    stopped_after = int(re.search(r"Stopped by SIGTERM after step (\d+)", text).group(1))
    assert 2 <= stopped_after < 23
    checkpointer = Checkpointer(output_dir / "ckpt")
    assert checkpointer.latest().name == f"model_step{stopped_after}.pth"
    assert load_checkpoint(checkpointer.latest())["step"] == stopped_after
    assert not list((output_dir / "ckpt").glob(".*.tmp"))

    run_tool(data_dir, output_dir, "--nw", "2", "--resume")
    resumed, reference = metrics(output_dir), metrics(reference_dir)
    assert sorted(resumed) == list(range(24))
    keys = ("loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "accuracy_cls", "lr")
    for step in range(24):  # also: evaluating (the reference run) leaves training unchanged
        assert [resumed[step][k] for k in keys] == [reference[step][k] for k in keys], step
    final = load_checkpoint(output_dir / "ckpt" / "model_step23.pth")["model"]
    expected = load_checkpoint(reference_dir / "ckpt" / "model_step23.pth")["model"]
    assert all(torch.equal(final[k], expected[k]) for k in expected)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend")
def test_sigterm_to_a_torchrun_group_stops_every_rank_after_the_same_step(first_run, tmp_path):
    """torchrun relays the group's SIGTERM to its children: they get it twice and must still save."""
    data_dir, _, _ = first_run
    output_dir = tmp_path / "run"
    tool_args = command(data_dir, output_dir, "--nw", "1")[1:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), *tool_args]  # fmt: skip
    log_path = tmp_path / "log.txt"
    with open(log_path, "w") as log:
        process = subprocess.Popen(launcher, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while "step 2/24" not in log_path.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=600)
    text = log_path.read_text()
    steps = [int(step) for step in re.findall(r"Stopped by SIGTERM after step (\d+)", text)]
    assert len(steps) == 2 and steps[0] == steps[1], text[-3000:]  # both ranks, the same step
    assert "StopAborted" not in text and "DataLoader worker" not in text
    checkpoint = load_checkpoint(Checkpointer(output_dir / "ckpt").latest())
    assert checkpoint["step"] == steps[0] and checkpoint["world_size"] == 2 and len(checkpoint["rng_per_rank"]) == 2


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
