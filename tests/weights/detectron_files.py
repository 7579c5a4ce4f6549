"""Test helpers: Detectron-style weight files made from a model's declared blob names.

Reusable by any head's tests (mask, keypoint, RetinaNet): `declared_blobs(model)` lists
the blobs a model's modules declare, `random_blobs(model)` makes arrays of the right
shapes for them (plus optional junk blobs), `write_py2_pickle` writes them the way
Detectron under Python 2 did (protocol 2, 8-bit strings, numpy 1 names), and
`expected_state(model, blobs)` says which value each of our tensors must end up with.
Other test folders import this file by path (`sys.path` gets this folder).
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

CFG_TEXT = (
    "MODEL:\n  TYPE: generalized_rcnn\n  BBOX_REG_WEIGHTS: !!python/tuple [10.0, 10.0, 5.0, 5.0]\n"
    "TRAIN: !!python/object/new:detectron.utils.collections.AttrDict\n  dictitems: {SCALES: [800]}\n"
    "NOTE: caf\xe9\n"
)


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: `str` and `bytes` as 8-bit strings, numpy under `numpy.core`."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_8bit_string(self, obj) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_8bit_string
    dispatch[bytes] = save_8bit_string

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__
        if module.startswith("numpy._core"):
            module = "numpy.core" + module[len("numpy._core") :]
        qualified = name or obj.__qualname__
        self.write(pickle.GLOBAL + f"{module}\n{qualified}\n".encode("ascii"))
        self.memoize(obj)


def py2_pickle_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_py2_pickle(path: str | Path, obj) -> Path:
    path = Path(path)
    path.write_bytes(py2_pickle_bytes(obj))
    return path


def declared_blobs(model: nn.Module) -> dict[str, str]:
    """Our state-dict name -> Detectron blob, from the first module on each path declaring a mapping."""
    table: dict[str, str] = {}
    covered: list[str] = []
    for path, module in model.named_modules():
        if any(path == c or path.startswith(c + ".") for c in covered) or "" in covered:
            continue
        if hasattr(type(module), "detectron_weight_mapping"):
            mapping, _ = module.detectron_weight_mapping()
            covered.append(path)
            table.update({(f"{path}.{k}" if path else k): v for k, v in mapping.items()})
    return table


def random_blobs(
    model: nn.Module, seed: int = 0, extra: dict[str, np.ndarray] | None = None, skip: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """float32 arrays of the right shapes for every blob `model` declares (activations stay finite).

    Weights are N(0, 1/fan_in), Detectron norm scales (`*_s`) U(0.5, 1), other vectors N(0, 0.05).
    `extra` adds (junk) blobs; `skip` leaves blobs out.
    """
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    blobs: dict[str, np.ndarray] = {}
    skip = set(skip)
    for ours, blob in declared_blobs(model).items():
        if blob in blobs or blob in skip:
            continue
        shape = tuple(state[ours].shape)
        if len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            value = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
        elif blob.endswith("_s"):
            value = rng.uniform(0.5, 1.0, shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        blobs[blob] = value.astype(np.float32)
    blobs.update(extra or {})
    return blobs


def imagenet_junk(blobs: dict[str, np.ndarray], gn: bool = False) -> dict[str, np.ndarray]:
    """What Detectron files carry besides the model: a `_momentum` for every blob, the ImageNet
    classifier (`fc1000_*`, or `pred_*` for GN models) and Caffe's zero conv biases."""
    junk = {f"{name}_momentum": np.zeros_like(value) for name, value in blobs.items()}
    classifier = "pred" if gn else "fc1000"
    junk[f"{classifier}_w"] = np.zeros((1000, 2048), np.float32)
    junk[f"{classifier}_b"] = np.zeros(1000, np.float32)
    if not gn:
        junk["conv1_b"] = np.zeros(64, np.float32)
        junk["res2_0_branch2a_b"] = np.zeros(64, np.float32)
    return junk


def expected_state(model: nn.Module, blobs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The value each of our mapped tensors must get from `blobs` (with the `_[xyz]_foo` rule)."""
    out = {}
    for ours, blob in declared_blobs(model).items():
        if blob not in blobs and "]_" in blob:
            blob = blob[blob.find("]_") + 2 :]
        if blob in blobs:
            out[ours] = torch.from_numpy(np.asarray(blobs[blob]))
    return out


def write_detectron_pkl(path: str | Path, blobs: dict[str, np.ndarray], cfg_text: str | None = CFG_TEXT) -> Path:
    """A Detectron file: `{'blobs': ..., 'cfg': ...}` (or the bare blob dict when `cfg_text` is None)."""
    return write_py2_pickle(path, blobs if cfg_text is None else {"blobs": blobs, "cfg": cfg_text})


class CallRecorder:
    """Counts the calls of every Conv2d / Linear during a forward, in the order they first run."""

    def __init__(self, model: nn.Module):
        self.order: list[nn.Module] = []
        self.calls: dict[nn.Module, int] = {}
        self._handles = [
            m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)
        ]

    def _hook(self, module, inputs, output) -> None:
        if module not in self.calls:
            self.order.append(module)
            self.calls[module] = 0
        self.calls[module] += 1

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def unique(self, predicate) -> nn.Module:
        """The one recorded layer for which `predicate(module, calls)` holds."""
        found = [m for m in self.order if predicate(m, self.calls[m])]
        assert len(found) == 1, f"expected one layer, found {len(found)}"
        return found[0]


REPO = Path(__file__).resolve().parents[2]


def config_tree(config: str, overrides: Iterable[str] = ()):
    """A fresh config tree (not the global cfg) from `configs/<config>` plus KEY VALUE overrides."""
    from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list

    cfg = get_cfg()
    merge_cfg_from_file(REPO / "configs" / config, target=cfg)
    merge_cfg_from_list(list(overrides), target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


def build(cfg, seed: int = 0) -> nn.Module:
    from pydetectron.modeling.model_builder import build_model

    torch.manual_seed(seed)
    return build_model(cfg).eval()
