"""Atomic checkpoint files, the newest-checkpoint pointer, RNG states that survive weights_only."""

import random

import numpy as np
import pytest
import torch

from pydetectron.engine.checkpoint import Checkpointer, atomic_write, load_checkpoint, save_checkpoint
from pydetectron.engine.rng import capture_rng_state, restore_rng_state, seed_everything


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    seed_everything(11)
    draws()
    state = capture_rng_state()
    expected = [draws() for _ in range(3)]
    save_checkpoint({"model": {}, "rng": state}, tmp_path / "c.pth")
    loaded = torch.load(tmp_path / "c.pth", weights_only=True)
    seed_everything(99)
    restore_rng_state(loaded["rng"])
    assert [draws() for _ in range(3)] == expected


def test_checkpointer_names_and_tracks_the_newest(tmp_path):
    checkpointer = Checkpointer(tmp_path / "ckpt")
    assert checkpointer.latest() is None
    checkpointer.save({"step": 4, "model": {"w": torch.ones(2)}})
    path = checkpointer.save({"step": 9, "model": {"w": torch.zeros(2)}})
    assert path == tmp_path / "ckpt" / "model_step9.pth"
    assert checkpointer.latest() == path
    assert load_checkpoint(path)["step"] == 9


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write(target, lambda handle: handle.write(b"old"))

    def broken(handle):
        handle.write(b"partial new content")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_crash_inside_torch_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpointer = Checkpointer(tmp_path)
    good = checkpointer.save({"step": 3, "model": {"w": torch.arange(4.0)}})
    real_save = torch.save

    def save_half_then_crash(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.truncate(handle.tell() // 2)
        raise RuntimeError("killed while saving")

    monkeypatch.setattr(torch, "save", save_half_then_crash)
    with pytest.raises(RuntimeError, match="killed while saving"):
        checkpointer.save({"step": 6, "model": {"w": torch.zeros(4)}})
    monkeypatch.undo()
    assert checkpointer.latest() == good
    assert not checkpointer.path_for(6).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_step3.pth"]
    torch.testing.assert_close(load_checkpoint(good)["model"]["w"], torch.arange(4.0))


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "detectron.pkl").write_bytes(b"x")
    with pytest.raises(ValueError, match="--load_detectron"):
        load_checkpoint(tmp_path / "detectron.pkl")
    torch.save({"weight": torch.ones(1)}, tmp_path / "state.pth")
    with pytest.raises(ValueError, match="'model' entry"):
        load_checkpoint(tmp_path / "state.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.pth")
