"""Reading weight files safely: Python 2 pickles load; code-carrying, truncated and corrupt files are refused."""

import os
import pickle
import pickletools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import CFG_TEXT, py2_pickle_bytes, write_py2_pickle  # noqa: E402

from pydetectron.weights import WeightsError, dumps_detectron_pickle, load_pickle, load_weights  # noqa: E402


class Tiny(nn.Module):
    """One conv that declares the blob `conv1_w`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)

    def detectron_weight_mapping(self):
        return {"conv.weight": "conv1_w"}, []


class RunsCommand:
    """A pickle payload that runs a shell command when unpickled by an unrestricted loader."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def _globals(data: bytes) -> list[str]:
    return [arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]


def test_python2_pickle_reads_arrays_scalars_and_the_cfg_text_unchanged(tmp_path):
    blobs = {
        "conv1_w": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
        "fc_b": np.array([1.5, -2.0], dtype=np.float64),
        "iters": np.int64(7),
    }
    data = py2_pickle_bytes({"blobs": blobs, "cfg": CFG_TEXT})
    # what Python 2 writes: 8-bit strings and numpy 1's module names, no Python 3 helpers
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert "SHORT_BINSTRING" in ops and "BINUNICODE" not in ops
    assert set(_globals(data)) == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
                                   "numpy.core.multiarray scalar"}  # fmt: skip
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    loaded = load_pickle(path)
    assert loaded["cfg"] == CFG_TEXT  # opaque: python tags and latin1 text as they are
    assert set(loaded["blobs"]) == set(blobs)
    for name, value in blobs.items():
        got = loaded["blobs"][name]
        assert np.asarray(got).dtype == np.asarray(value).dtype and np.array_equal(got, value), name


def test_python3_protocol2_pickles_load_too(tmp_path):
    """Detectron run under Python 3 writes bytes through `_codecs.encode` and numpy 2 names."""
    blobs = {"conv1_w": np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)}
    data = pickle.dumps({"blobs": blobs, "cfg": "MODEL: {}"}, protocol=2)
    assert "_codecs encode" in _globals(data)
    path = tmp_path / "py3.pkl"
    path.write_bytes(data)
    assert np.array_equal(load_pickle(path)["blobs"]["conv1_w"], blobs["conv1_w"])


def test_our_pickle_writer_is_read_by_plain_pickle_with_numpy1_names():
    blobs = {"a_w": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float32(2.5)}
    data = dumps_detectron_pickle({"blobs": blobs, "cfg": "x: 1"})
    assert not [g for g in _globals(data) if g.startswith("numpy._core")]
    assert max(op.proto for op, _, _ in pickletools.genops(data)) <= 2
    reference = pickle.loads(data, encoding="latin1")  # the standard unpickler as the reference reader
    assert reference["cfg"] == "x: 1" and np.array_equal(reference["blobs"]["a_w"], blobs["a_w"])
    assert reference["blobs"]["s"] == np.float32(2.5)


@pytest.mark.parametrize(
    "payload, refused",
    [
        (lambda marker: RunsCommand(f"touch {marker}"), "posix.system"),
        (lambda marker: CallsEval(), "builtins.eval"),
    ],
)
def test_code_in_a_pickle_is_refused_before_it_runs(tmp_path, payload, refused):
    marker = tmp_path / "ran"
    path = write_py2_pickle(tmp_path / "evil.pkl", {"blobs": {"conv1_w": payload(marker)}})
    with pytest.raises(WeightsError) as info:
        load_weights(Tiny(), path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and refused in message
    assert not marker.exists()


def test_a_python3_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil3.pkl"
    path.write_bytes(pickle.dumps({"conv1_w": RunsCommand(f"touch {marker}")}, protocol=4))
    with pytest.raises(WeightsError, match="refused posix.system"):
        load_pickle(path)
    assert not marker.exists()


def test_latin1_is_the_only_codec_a_pickle_may_call(tmp_path):
    path = tmp_path / "codec.pkl"
    # GLOBAL _codecs.encode('x', 'rot13'): allowed name, refused argument
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(WeightsError, match="refused _codecs.encode"):
        load_pickle(path)


def test_code_in_a_torch_file_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": RunsCommand(f"touch {marker}")}, path)
    with pytest.raises(WeightsError) as info:
        load_weights(Tiny(), path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "posix.system" in message
    assert "weights_only set to `False`" not in message
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_give_one_line_naming_the_file(tmp_path, suffix, damage):
    good = {"conv1_w": np.zeros((4, 3, 3, 3), np.float32)}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pkl":
        write_py2_pickle(path, {"blobs": good})
    else:
        torch.save({k: torch.from_numpy(v) for k, v in good.items()}, path)
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"\x80\x02not a pickle" * 3, "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(WeightsError) as info:
        load_weights(Tiny(), path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert ("empty" if damage == "empty" else "truncated or corrupt") in message


def test_a_pickle_that_is_not_a_dict_is_refused(tmp_path):
    path = write_py2_pickle(tmp_path / "list.pkl", [np.zeros(3, np.float32)])
    with pytest.raises(WeightsError, match="expected a dict of weights, found a list"):
        load_weights(Tiny(), path)
