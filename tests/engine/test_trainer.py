"""The training loop: iter_size accumulation, exact resume, NaN stop, bf16 on the CPU, metrics."""

import json
import os
import signal
import statistics

import pytest
import torch
from engine_test_support import TinyDetector, tiny_loader, tiny_schedule

from pydetectron.data.minibatch import SampleKey, collate_minibatch
from pydetectron.engine.amp import MixedPrecision
from pydetectron.engine.checkpoint import Checkpointer, load_checkpoint
from pydetectron.engine.hooks import default_hooks
from pydetectron.engine.losses import NonFiniteLossError
from pydetectron.engine.metrics import JSONLinesWriter, TrainingStats
from pydetectron.engine.optimizer import SolverSettings, build_optimizer
from pydetectron.engine.rng import seed_everything
from pydetectron.engine.trainer import Trainer, TrainerOptions, detection_forward

MAX_ITER = 8


def schedule():
    return tiny_schedule(MAX_ITER)


def make_trainer(loader, out_dir=None, seed=0, iter_size=1, forward_fn=detection_forward, amp="", clip=0.0,
                 period=3, stats=None, handle_signals=True, random_ops=True):
    seed_everything(seed)
    model = TinyDetector(random_ops=random_ops)
    solver = SolverSettings(weight_decay=1e-3)
    optimizer = build_optimizer(model, solver, schedule()(0))
    hooks = default_hooks(
        checkpointer=Checkpointer(out_dir / "ckpt") if out_dir is not None else None, snapshot_period=period,
        stats=stats, handle_signals=handle_signals,
    )
    return Trainer(
        model, optimizer, schedule(), loader,
        TrainerOptions(max_iter=MAX_ITER, iter_size=iter_size, clip_grad_norm=clip),
        solver=solver, device="cpu", amp=MixedPrecision(amp, "cpu"), forward_fn=forward_fn, hooks=hooks,
        keep_history=True,
    )


def counting_forward(action_at: int, action):
    """detection_forward that calls `action(model, batch, outputs)` on call number `action_at`."""
    calls = {"n": 0}

    def forward(model, batch):
        outputs = detection_forward(model, batch)
        if calls["n"] == action_at:
            outputs = action(model, batch, outputs) or outputs
        calls["n"] += 1
        return outputs

    return forward


def losses_of(history):
    return [(h["loss"], h["loss_box"], h["loss_score"]) for h in history]


@pytest.fixture(scope="module")
def full_run(shapes_dir, tmp_path_factory):
    trainer = make_trainer(tiny_loader(shapes_dir), tmp_path_factory.mktemp("full"))
    result = trainer.train()
    return result, {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_full_run_saves_periodically_and_at_the_end(full_run):
    result, _ = full_run
    assert result.last_step == MAX_ITER - 1 and not result.stopped_by
    assert len(result.history) == MAX_ITER
    names = sorted(p.name for p in result.checkpoint.parent.iterdir())
    assert names == ["last_checkpoint", "model_step2.pth", "model_step5.pth", "model_step7.pth"]
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert checkpoint["step"] == 7 and checkpoint["lr"] == pytest.approx(0.005)
    assert checkpoint["loader"]["sampler"]["next_batch"] == MAX_ITER


def test_resume_after_sigterm_repeats_the_uninterrupted_run(shapes_dir, tmp_path, full_run):
    full, full_state = full_run
    # SIGTERM during step 3: the step finishes, a checkpoint is written, training stops
    stopper = counting_forward(3, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    first = make_trainer(tiny_loader(shapes_dir), tmp_path, forward_fn=stopper).train()
    assert first.stopped_by == "SIGTERM" and first.last_step == 3
    assert first.checkpoint.name == "model_step3.pth"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored

    # a fresh process state: other initial weights, other RNG draws, a new loader
    resumed = make_trainer(tiny_loader(shapes_dir), tmp_path, seed=1234)
    start = resumed.resume(load_checkpoint(Checkpointer(tmp_path / "ckpt").latest()))
    assert start == 4
    result = resumed.train(start)
    assert losses_of(first.history) == losses_of(full.history[:4])
    assert losses_of(result.history) == losses_of(full.history[4:])
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, full_state[key]), key


def test_keyboard_interrupt_mid_step_saves_the_last_finished_step(shapes_dir, tmp_path, full_run):
    full, _ = full_run

    def interrupt(*_):
        raise KeyboardInterrupt

    trainer = make_trainer(tiny_loader(shapes_dir), tmp_path, forward_fn=counting_forward(6, interrupt),
                           handle_signals=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    latest = Checkpointer(tmp_path / "ckpt").latest()
    assert latest.name == "model_step5.pth"
    resumed = make_trainer(tiny_loader(shapes_dir), tmp_path, seed=99)
    result = resumed.train(resumed.resume(load_checkpoint(latest)))
    assert losses_of(result.history) == losses_of(full.history[6:])


def test_iter_size_two_half_batches_give_the_gradients_of_the_whole_batch(shapes_dir):
    dataset = tiny_loader(shapes_dir).dataset
    samples = [dataset[SampleKey(index, 0, 0)] for index in (0, 3, 5, 8)]
    whole = collate_minibatch(samples)
    halves = [collate_minibatch(samples[:2]), collate_minibatch(samples[2:])]
    assert whole["data"].shape[0] == 4 and halves[0]["data"].shape[0] == 2

    one_batch = make_trainer([whole], random_ops=False)
    one_batch.run_step(0, iter([whole]))
    accumulated = make_trainer(halves, iter_size=2, random_ops=False)
    values, _ = accumulated.run_step(0, iter(halves))
    for (name, p), q in zip(one_batch.model.named_parameters(), accumulated.model.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6, msg=name)
    # the logged loss is the mean over the two half batches
    initial_model = make_trainer([], random_ops=False).model  # same seed: the weights before the update
    half_losses = []
    with torch.no_grad():
        for half in halves:
            outputs = detection_forward(initial_model, half)
            half_losses.append(float(outputs["loss_box"] + outputs["loss_score"]))
    assert values["loss"] == pytest.approx(sum(half_losses) / 2, rel=1e-6)


def test_non_finite_loss_stops_before_the_update_and_keeps_the_checkpoint(shapes_dir, tmp_path):
    before = {}

    def poison(model, batch, outputs):
        before.update({k: v.clone() for k, v in model.state_dict().items()})
        outputs["loss_box"] = outputs["loss_box"] * float("nan")
        return outputs

    trainer = make_trainer(tiny_loader(shapes_dir), tmp_path, forward_fn=counting_forward(4, poison))
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()
    assert error.value.step == 4
    assert set(error.value.bad_terms) == {"loss", "loss_box"}
    assert "step 4" in str(error.value) and "loss_box=nan" in str(error.value)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # no update from the bad step
    checkpointer = Checkpointer(tmp_path / "ckpt")
    assert checkpointer.latest().name == "model_step2.pth"
    assert sorted(p.name for p in checkpointer.directory.iterdir()) == ["last_checkpoint", "model_step2.pth"]
    assert load_checkpoint(checkpointer.latest())["step"] == 2


def test_bf16_autocast_step_on_the_cpu(shapes_dir):
    seen = []

    def forward(model, batch):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return detection_forward(model, batch)

    trainer = make_trainer(tiny_loader(shapes_dir), amp="bf16", forward_fn=forward)
    values, _ = trainer.run_step(0, iter(tiny_loader(shapes_dir)))
    assert seen == [(True, torch.bfloat16)]
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    assert all(p.grad.dtype == torch.float32 for p in trainer.model.parameters() if p.requires_grad)


def test_fp16_needs_cuda():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        MixedPrecision("fp16", "cpu")


def test_gradient_clipping(shapes_dir):
    trainer = make_trainer(tiny_loader(shapes_dir), clip=1e-3)
    values, _ = trainer.run_step(0, iter(tiny_loader(shapes_dir)))
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    clipped_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    assert values["grad_norm"] > 1e-3
    assert clipped_norm == pytest.approx(1e-3, rel=1e-4)


def test_metrics_lines_every_disp_interval(shapes_dir, tmp_path):
    stats = TrainingStats(MAX_ITER, disp_interval=3, writers=[JSONLinesWriter(tmp_path / "metrics.jsonl")])
    result = make_trainer(tiny_loader(shapes_dir), stats=stats).train()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 3, 6, 7]
    for line in lines:
        step = line["step"]
        window = [h["loss"] for h in result.history[max(0, step - 2) : step + 1]]
        assert line["loss"] == pytest.approx(statistics.median(window))
        assert line["lr"] == pytest.approx(schedule()(step))
        assert line["eta_seconds"] == pytest.approx(line["time"] * (MAX_ITER - step - 1))
        assert line["memory_mb"] > 0 and line["time"] > 0
        assert {"loss_box", "loss_score", "accuracy", "data_time"} <= set(line)


class DyingLoader:
    """A loader whose workers 'die' after a Ctrl-C at batch `at` (as DataLoader workers do)."""

    def __init__(self, loader, at):
        self.loader, self.at = loader, at

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if index == self.at:
                os.kill(os.getpid(), signal.SIGINT)
                raise RuntimeError("DataLoader worker exited unexpectedly")
            yield batch

    def state_dict(self):
        return self.loader.state_dict()


def test_ctrl_c_that_kills_the_loader_workers_saves_the_last_finished_step(shapes_dir, tmp_path):
    # batch 5 is the second minibatch of step 2 (iter_size 2): step 1 is the last finished one
    trainer = make_trainer(DyingLoader(tiny_loader(shapes_dir), at=5), tmp_path, iter_size=2, period=0)
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the test process runs in the background
    result = trainer.train()
    assert result.stopped_by == "SIGINT" and result.last_step == 1
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint["step"] == 1 and checkpoint["loader"]["sampler"]["next_batch"] == 4
    assert signal.getsignal(signal.SIGINT) is handler_before  # the trainer put the handler back
