#!/usr/bin/env python
"""Convert Darknet-YOLOv5 backbone weights to Ultralytics YOLOv5's layout, or back.

Examples:
    # ours (a state dict, or a tools/train_classifier.py checkpoint) -> Ultralytics names
    python tools/convert_yolov5_weights.py darknet_yolov5s.pth yolov5s_backbone.pth
    # Ultralytics state dict (model.0..model.8; --skip-rest drops SPPF, neck and head) -> ours
    python tools/convert_yolov5_weights.py --from-ultralytics --skip-rest yolov5s_state.pth ours.pth

The output is a plain state dict. Ultralytics' own `.pt` files pickle the model object:
save `ckpt["model"].float().state_dict()` from it first (this tool only reads tensors).
Our CSP stages concatenate their halves in the other order from Ultralytics' C3, so
the last 1x1 conv of each stage has its input channels reordered: the converted
weights compute the same function.
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from pydetectron.backbones.toolbox.yolov5_weights import from_ultralytics, to_ultralytics

logger = logging.getLogger("convert_yolov5_weights")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="weights file to read (read with weights_only=True)")
    parser.add_argument("dst", help="state dict file to write")
    parser.add_argument(
        "--from-ultralytics", action="store_true", help="convert Ultralytics names to ours (default: ours to theirs)"
    )
    parser.add_argument("--skip-rest", action="store_true", help="with --from-ultralytics, drop entries past model.8")
    return parser.parse_args(argv)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state dict from `path`: plain, or under 'model'/'state_dict' (our classifier checkpoints too)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickled model object, or not a torch file
        raise SystemExit(f"{path}: not a readable state dict ({error})") from error
    if isinstance(data, dict):
        for key in ("model", "state_dict"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SystemExit(f"{path}: expected a dict of tensors")
    if any(k.startswith("backbone.") for k in data):  # a classifier checkpoint: keep the backbone
        data = {k[len("backbone.") :]: v for k, v in data.items() if k.startswith("backbone.")}
    return data


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    state = read_state_dict(args.src)
    try:
        converted = from_ultralytics(state, args.skip_rest) if args.from_ultralytics else to_ultralytics(state)
    except ValueError as error:
        raise SystemExit(f"{args.src}: {error}") from error
    torch.save(converted, args.dst)
    direction = "Ultralytics -> pydetectron" if args.from_ultralytics else "pydetectron -> Ultralytics"
    logger.info("%s: %d tensors written to %s", direction, len(converted), args.dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
