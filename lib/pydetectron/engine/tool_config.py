"""Config trees for tools and predictors: a fresh tree from `get_cfg()`, never the global `cfg`.

So two configs live side by side in one process (two predictors in a notebook, a test that
runs a tool twice). A checkpoint written by train_net_step.py carries its config as YAML
text; the keys that describe the machine it was made on (`MACHINE_KEYS`) are not taken from
it, so `PYDETECTRON_DATA_DIR` and the local checkout apply where the checkpoint is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from pydetectron.config import (
    AttrDict,
    assert_and_infer_cfg,
    get_cfg,
    merge_cfg_from_cfg,
    merge_cfg_from_file,
    merge_cfg_from_list,
)
from pydetectron.engine.checkpoint import CheckpointError, read_weights_file

# Paths and devices of the machine a checkpoint was made on.
MACHINE_KEYS = ("DATA_DIR", "ROOT_DIR", "OUTPUT_DIR", "CUDA")


def stored_cfg(checkpoint: Mapping[str, Any]) -> dict | None:
    """The config tree stored in one of our checkpoints ('cfg' YAML text) without MACHINE_KEYS, else None."""
    text = checkpoint.get("cfg")
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CheckpointError(f"the config stored in the checkpoint is not valid YAML ({error})") from error
    if not isinstance(tree, dict):
        return None
    return {key: value for key, value in tree.items() if key not in MACHINE_KEYS}


def tool_cfg(
    cfg_file: str | os.PathLike | None = None,
    checkpoint: Mapping[str, Any] | None = None,
    set_cfgs: Sequence[Any] = (),
    adjust: Callable[[AttrDict], None] | None = None,
    missing_cfg_hint: str = "give --cfg",
) -> AttrDict:
    """A fresh config: defaults, then `cfg_file` (else the checkpoint's own config), then
    `adjust(cfg)` (the tool's dataset and flags), then `set_cfgs` (KEY VALUE pairs). Not frozen:
    finish with `assert_and_infer_cfg(target=cfg)`."""
    cfg = get_cfg()
    stored = stored_cfg(checkpoint) if checkpoint is not None else None
    if cfg_file:
        merge_cfg_from_file(cfg_file, target=cfg)
    elif stored is not None:
        merge_cfg_from_cfg(stored, target=cfg)
    else:
        where = "the checkpoint does not carry its config" if checkpoint is not None else "no checkpoint was given"
        raise CheckpointError(f"no config: {where}; {missing_cfg_hint}")
    if adjust is not None:
        adjust(cfg)
    if set_cfgs:
        merge_cfg_from_list(list(set_cfgs), target=cfg)
    return cfg


def cfg_from_checkpoint(
    checkpoint: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, where: str = "the checkpoint"
) -> AttrDict:
    """The frozen config stored in `checkpoint`, with `overrides` ({"TEST.SCALE": 800, ...}) merged."""
    pairs = [item for key_value in (overrides or {}).items() for item in key_value]
    hint = f"{where} was not written by train_net_step.py: build the config yourself and use Predictor(cfg, weights)"
    cfg = tool_cfg(checkpoint=checkpoint, set_cfgs=pairs, missing_cfg_hint=hint)
    assert_and_infer_cfg(target=cfg)
    return cfg


def checkpoint_and_cfg(
    cfg_file: str | os.PathLike | None,
    load_ckpt: str | os.PathLike | None,
    set_cfgs: Sequence[Any] = (),
    adjust: Callable[[AttrDict], None] | None = None,
) -> tuple[dict | None, AttrDict]:
    """The inference tools' start: `--load_ckpt` read (if given) and its config (or `--cfg`),
    adjusted and `--set` applied; the config is not frozen yet."""
    checkpoint = read_weights_file(load_ckpt) if load_ckpt else None
    hint = "give --cfg with the config the weights were trained with"
    return checkpoint, tool_cfg(cfg_file, checkpoint, set_cfgs, adjust, missing_cfg_hint=hint)
