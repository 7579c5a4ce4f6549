"""The toolbox backbone contract shared by every family in `pydetectron.backbones`.

A backbone maps an image batch to feature maps at strides 2, 4, 8, 16 and 32:

    model = pydetectron.backbones.cspdarknet53()
    model(x)                        # the last map (stride 32)
    model.get_feature_maps(x)       # [C1, C2, C3, C4, C5], strides 2, 4, 8, 16, 32
    model.out_channels_list         # channels of those maps, same order
    model.stride                    # stride of forward()'s output: 32

Detection bodies (`toolbox.<backbone>+<neck>`) are built on this contract and need nothing else.
"""

from __future__ import annotations

import os

import torch
from torch import nn

FEATURE_STRIDES = (2, 4, 8, 16, 32)
# Prefix of the classification head in checkpoints of tools/train_classifier.py.
CLASSIFIER_HEAD_PREFIX = "head."


class Backbone(nn.Module):
    """Base class: subclasses set `out_channels_list` and implement `get_feature_maps`."""

    out_channels_list: tuple[int, ...] = ()
    stride: int = 32
    # Entries of a weights file that belong to a classifier this backbone does not keep
    # (e.g. torchvision's "fc." / "classifier."); load_pretrained skips them.
    ignored_pretrained_prefixes: tuple[str, ...] = ()

    def get_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2, 4, 8, 16, 32 (finest first)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_feature_maps")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The coarsest feature map (stride `self.stride`)."""
        return self.get_feature_maps(x)[-1]

    @property
    def feature_strides(self) -> tuple[int, ...]:
        """Stride of each map of `get_feature_maps`, same order as `out_channels_list`."""
        return FEATURE_STRIDES[-len(self.out_channels_list) :]

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load a local weights file strictly (a state dict, or a checkpoint holding one).

        Accepted layouts: a plain state dict, `{'state_dict': ...}` or `{'model': ...}`
        (classifier checkpoints of tools/train_classifier.py keep the backbone under the
        `backbone.` prefix, which is stripped, and their `head.` classifier is skipped).
        Entries under `ignored_pretrained_prefixes` are skipped too. Files are read with
        `weights_only=True`, so nothing in them runs. A mismatch raises a ValueError
        listing the missing and unexpected names and any shape differences.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{type(self).__name__}: pretrained weights file not found: {path}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # corrupt file or a pickle that carries code
            raise ValueError(f"{path}: not a readable PyTorch weights file ({error})") from error
        state = _unwrap_state_dict(data, path)
        if self.ignored_pretrained_prefixes:
            state = {k: v for k, v in state.items() if not k.startswith(self.ignored_pretrained_prefixes)}
        own = self.state_dict()
        missing = sorted(k for k in own if k not in state)
        unexpected = sorted(k for k in state if k not in own)
        shapes = [
            f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in state.items()
            if k in own and tuple(v.shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (e.g. {missing[:5]})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:5]})")
            if shapes:
                parts.append("shape mismatches: " + "; ".join(shapes[:5]))
            raise ValueError(f"{path} does not fit {type(self).__name__}: " + ", ".join(parts))
        self.load_state_dict(state)


def _unwrap_state_dict(data, path: str) -> dict[str, torch.Tensor]:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(data).__name__}")
    for key in ("state_dict", "model"):
        if key in data and isinstance(data[key], dict):
            data = data[key]
            break
    if any(k.startswith("backbone.") for k in data):
        # A classifier (backbone + `head.`) or a state dict with the backbone under `backbone.`;
        # any other entry is kept so that it is reported as unexpected.
        data = {
            (k[len("backbone.") :] if k.startswith("backbone.") else k): v
            for k, v in data.items()
            if not k.startswith(CLASSIFIER_HEAD_PREFIX)
        }
    bad = [k for k, v in data.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {bad[:5]}")
    return data
