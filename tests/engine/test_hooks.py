"""Training hooks: a user hook, exact resume with hook state (EMA, evaluation, metrics), signals, LR lines."""

import json
import logging
import os
import random
import signal

import numpy as np
import pytest
import torch
from engine_test_support import TinyDetector, tiny_loader, tiny_schedule

from pydetectron.engine.checkpoint import Checkpointer, atomic_write, load_checkpoint
from pydetectron.engine.hooks import EMAHook, Hook, LRChangeLogger, default_hooks
from pydetectron.engine.metrics import JSONLinesWriter, TrainingStats
from pydetectron.engine.optimizer import SolverSettings, build_optimizer
from pydetectron.engine.rng import seed_everything
from pydetectron.engine.signals import StopAborted, StopSignals
from pydetectron.engine.trainer import Trainer, TrainerOptions, detection_forward

MAX_ITER = 8


def schedule():
    return tiny_schedule(MAX_ITER)


def make_trainer(shapes_dir, hooks=(), seed=0, forward_fn=detection_forward):
    seed_everything(seed)
    model = TinyDetector(random_ops=True)
    solver = SolverSettings(weight_decay=1e-3)
    optimizer = build_optimizer(model, solver, schedule()(0))
    return Trainer(model, optimizer, schedule(), tiny_loader(shapes_dir), TrainerOptions(max_iter=MAX_ITER),
                   solver=solver, device="cpu", forward_fn=forward_fn, hooks=hooks, keep_history=True)  # fmt: skip


class Recorder(Hook):
    """Counts what the loop tells its hooks."""

    def __init__(self):
        self.calls = []
        self.updates = []
        self.steps = []

    def before_train(self, trainer):
        self.calls.append("before_train")

    def before_step(self, trainer, step):
        self.calls.append(f"before_step {step}")

    def before_update(self, trainer, step, values):
        self.updates.append((step, dict(values)))

    def after_step(self, trainer, step, values):
        self.steps.append((step, dict(values)))

    def after_train(self, trainer, result):
        self.calls.append(f"after_train {result.last_step}")


def test_a_registered_hook_counts_steps_and_sees_the_losses(shapes_dir):
    recorder = Recorder()
    trainer = make_trainer(shapes_dir)
    trainer.register_hooks(recorder)
    result = trainer.train()
    assert recorder.calls == ["before_train", *(f"before_step {s}" for s in range(MAX_ITER)), "after_train 7"]
    assert [step for step, _ in recorder.steps] == list(range(MAX_ITER))
    assert [values for _, values in recorder.steps] == result.history
    for (_, before), (_, after) in zip(recorder.updates, recorder.steps):
        assert before == after and before["loss"] == pytest.approx(before["loss_box"] + before["loss_score"])
    with pytest.raises(ValueError, match="'Recorder' is registered already"):
        trainer.register_hooks(Recorder())


def weights_score(weights, step):
    """A fake evaluation: a number that depends on every weight, after drawing from every RNG."""
    torch.rand(5)
    np.random.rand(3)
    random.random()
    total = sum(float(v.double().sum()) for v in weights.values() if v.is_floating_point())
    return {"fake/AP": (total * 1000.0) % 1.0, "fake/step": float(step)}


def full_hooks(out_dir, with_eval=True):
    stats = TrainingStats(MAX_ITER, disp_interval=3, writers=[JSONLinesWriter(out_dir / "metrics.jsonl")])
    return default_hooks(
        checkpointer=Checkpointer(out_dir / "ckpt"), snapshot_period=3, stats=stats, ema_decay=0.7,
        evaluate=weights_score if with_eval else None, eval_period=2, best_metric="fake/AP",
        best_path=out_dir / "ckpt" / "model_best.pth", writers=stats.writers,
    )  # fmt: skip


def stable_lines(out_dir):
    """metrics.jsonl without the timing and memory entries (those differ between runs)."""
    volatile = {"time", "data_time", "eta_seconds", "memory_mb"}
    lines = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in volatile} for line in lines]


def test_resume_with_ema_evaluation_and_metrics_hooks_is_bit_exact(shapes_dir, tmp_path):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full = make_trainer(shapes_dir, full_hooks(full_dir))
    full_result = full.train()
    full_ema = next(h for h in full.hooks if isinstance(h, EMAHook)).averaged_state()

    def sigterm_in_step_4(model, batch, calls=[0]):  # noqa: B006  (a counter across calls)
        if calls[0] == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        calls[0] += 1
        return detection_forward(model, batch)

    first = make_trainer(shapes_dir, full_hooks(cut_dir), forward_fn=sigterm_in_step_4).train()
    assert first.stopped_by == "SIGTERM" and first.checkpoint.name == "model_step4.pth"
    resumed = make_trainer(shapes_dir, full_hooks(cut_dir), seed=77)
    result = resumed.train(resumed.resume(load_checkpoint(first.checkpoint)))

    assert first.history + result.history == full_result.history
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    resumed_ema = next(h for h in resumed.hooks if isinstance(h, EMAHook)).averaged_state()
    assert all(torch.equal(resumed_ema[k], v) for k, v in full_ema.items())
    assert stable_lines(cut_dir) == stable_lines(full_dir)  # losses, lr, evaluations, in order
    evaluations = [line for line in stable_lines(full_dir) if "fake/AP" in line]
    assert [line["step"] for line in evaluations] == [1, 3, 5, 7]
    best = max(evaluations, key=lambda line: line["fake/AP"])
    for out_dir in (full_dir, cut_dir):
        saved = load_checkpoint(out_dir / "ckpt" / "model_best.pth")
        assert saved["step"] == best["step"] and saved["best_value"] == best["fake/AP"]
        assert weights_score(saved["model"], 0)["fake/AP"] == best["fake/AP"]  # the EMA weights were evaluated

    # the evaluations (which draw random numbers) leave training as it is without them
    plain = make_trainer(shapes_dir, full_hooks(tmp_path / "plain", with_eval=False)).train()
    assert plain.history == full_result.history


class SignallingCheckpointer(Checkpointer):
    """Gets a second SIGTERM while it writes the checkpoint of step `at`."""

    def __init__(self, directory, at):
        super().__init__(directory)
        self.at = at

    def save(self, checkpoint):
        if checkpoint["step"] != self.at:
            return super().save(checkpoint)

        def write(handle):
            handle.write(b"half a checkpoint")
            os.kill(os.getpid(), signal.SIGTERM)
            handle.write(b" and the rest")

        return atomic_write(self.path_for(self.at), write)


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(shapes_dir, tmp_path):
    def sigterm_in_step_4(model, batch, calls=[0]):  # noqa: B006
        if calls[0] == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        calls[0] += 1
        return detection_forward(model, batch)

    hooks = default_hooks(checkpointer=SignallingCheckpointer(tmp_path / "ckpt", at=4), snapshot_period=3)
    trainer = make_trainer(shapes_dir, hooks, forward_fn=sigterm_in_step_4)
    with pytest.raises(StopAborted, match="SIGTERM received again"):
        trainer.train()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last_checkpoint", "model_step2.pth"]
    assert load_checkpoint(Checkpointer(tmp_path / "ckpt").latest())["step"] == 2
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_relayed_signal_within_the_window_is_the_same_request():
    requests = []
    with StopSignals(requests.append, repeat_window=60.0) as handlers:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)  # e.g. torchrun relaying the group's signal
        assert handlers.requested and handlers.signal_name == "SIGUSR1" and requests == ["SIGUSR1"]
        with pytest.raises(StopAborted, match="SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)  # another signal is a second request
    with StopSignals(requests.append) as handlers:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(StopAborted):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_lr_changes_are_logged_above_the_threshold(shapes_dir, caplog):
    trainer = make_trainer(shapes_dir, [LRChangeLogger(threshold=1.1)])
    with caplog.at_level(logging.INFO, logger="pydetectron.engine.hooks.lr_logging"):
        trainer.train()
    lrs = [schedule()(step) for step in range(MAX_ITER)]  # 0.025, 0.0333, 0.0417, 0.05, 0.05, 0.005, ...
    expected = [
        f"Changing learning rate {lrs[s - 1]:.6f} -> {lrs[s]:.6f} at step {s}"
        for s in range(1, MAX_ITER)
        if lrs[s] != lrs[s - 1] and max(lrs[s] / lrs[s - 1], lrs[s - 1] / lrs[s]) > 1.1
    ]
    assert expected[-1] == "Changing learning rate 0.050000 -> 0.005000 at step 5" and len(expected) == 4
    assert [record.getMessage() for record in caplog.records] == expected


class WeightsAfterEachStep(Hook):
    def __init__(self):
        self.states = []

    def before_train(self, trainer):
        self.states.append({k: v.detach().double().clone() for k, v in trainer.model.state_dict().items()})

    def after_step(self, trainer, step, values):
        self.states.append({k: v.detach().double().clone() for k, v in trainer.model.state_dict().items()})


def test_ema_is_the_exponential_average_of_the_weights(shapes_dir):
    ema, seen = EMAHook(0.6), WeightsAfterEachStep()
    trainer = make_trainer(shapes_dir, [seen, ema])
    trainer.train()
    expected = dict(seen.states[0])
    for state in seen.states[1:]:  # float64 reference: a = 0.6 a + 0.4 w after every step
        expected = {k: 0.6 * expected[k] + 0.4 * state[k] for k in state}
    assert ema.num_updates == MAX_ITER
    for key, value in ema.averaged_state().items():
        torch.testing.assert_close(value.double(), expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(ema.averaged_state()["conv.weight"], trainer.model.state_dict()["conv.weight"])
    with pytest.raises(ValueError, match="decay must lie in"):
        EMAHook(1.0)


def test_an_evaluation_that_fails_after_a_stop_request_is_skipped(shapes_dir, tmp_path):
    def evaluate_then_fail(weights, step):
        if stop_first:
            trainer.request_stop("SIGTERM")  # as the signal handler does
        raise RuntimeError("DataLoader worker (pid 123) is killed by signal: Terminated.")

    stop_first = True
    trainer = make_trainer(shapes_dir, default_hooks(checkpointer=Checkpointer(tmp_path / "ckpt"),
                                                     evaluate=evaluate_then_fail, eval_period=2))  # fmt: skip
    result = trainer.train()
    assert result.stopped_by == "SIGTERM" and result.last_step == 1 and result.checkpoint.name == "model_step1.pth"
    stop_first = False
    trainer = make_trainer(shapes_dir, default_hooks(evaluate=evaluate_then_fail, eval_period=2))
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        trainer.train()
