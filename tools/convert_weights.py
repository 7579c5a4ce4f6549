#!/usr/bin/env python
"""Convert weights between Detectron `.pkl` files and pydetectron checkpoints.

Examples:
    # a Detectron model-zoo file (path or URL) -> a checkpoint test_net.py / infer_simple.py load alone
    python tools/convert_weights.py to_pth --cfg configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml \\
        model_final.pkl e2e_faster_rcnn_R-50-FPN_1x.pth
    # our checkpoint -> a Detectron blob dict ({'blobs': ..., 'cfg': ...}, pickle protocol 2)
    python tools/convert_weights.py to_pkl Outputs/.../ckpt/model_step89999.pth model_final.pkl

`to_pth` writes {'model': state dict, 'cfg': YAML text, 'source': the input, 'detectron_cfg':
the input's stored config text when it has one}. `to_pkl` writes every tensor the model's
modules name, with BatchNorm statistics folded into Detectron's affine `_s` / `_b` blobs.
Both refuse a conversion that would leave model tensors at their initial values or skip
some for their shape (`--allow_partial` accepts it).
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import torch
import yaml

from pydetectron.config import (
    assert_and_infer_cfg,
    get_cfg,
    merge_cfg_from_cfg,
    merge_cfg_from_file,
    merge_cfg_from_list,
)
from pydetectron.engine.checkpoint import atomic_write
from pydetectron.engine.cli import ToolArgumentParser
from pydetectron.modeling.model_builder import build_model
from pydetectron.weights import (
    LoadReport,
    WeightsError,
    dumps_detectron_pickle,
    load_weights,
    model_to_detectron_blobs,
    resolve_weights,
)
from pydetectron.weights.files import read_weights_file

logger = logging.getLogger("convert_weights")


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("direction", choices=("to_pth", "to_pkl"), help="to_pth: Detectron -> ours; to_pkl: back")
    parser.add_argument("weights", help="input weights: a path or URL (to_pth), our checkpoint (to_pkl)")
    parser.add_argument("output", help="file to write (.pth for to_pth, .pkl for to_pkl)")
    parser.add_argument("--cfg", dest="cfg_file", help="model config (to_pkl: default the checkpoint's own)")
    parser.add_argument(
        "--set", dest="set_cfgs", nargs="+", action="extend", default=[], metavar="KEY VALUE", help="config overrides"
    )
    parser.add_argument("--allow_partial", action="store_true", help="write even if model tensors were not loaded")
    args = parser.parse_args(argv)
    if len(args.set_cfgs) % 2:
        parser.error(f"--set needs KEY VALUE pairs, got {args.set_cfgs}")
    if args.direction == "to_pth" and not args.cfg_file:
        parser.error("to_pth needs --cfg (a Detectron file does not carry a config this tool can read)")
    return args


def stored_cfg(path: str) -> dict | None:
    """The config tree a checkpoint of ours carries ('cfg' YAML text), else None."""
    data, is_pickle = read_weights_file(path)
    text = None if is_pickle else data.get("cfg")
    if not isinstance(text, str):
        return None
    tree = yaml.safe_load(text)
    return tree if isinstance(tree, dict) else None


def model_cfg(args, weights_path: str):
    cfg = get_cfg()
    if args.cfg_file:
        merge_cfg_from_file(args.cfg_file, target=cfg)
    else:
        tree = stored_cfg(weights_path)
        if tree is None:
            raise SystemExit(f"{weights_path} carries no config: give --cfg")
        merge_cfg_from_cfg(tree, target=cfg)
    merge_cfg_from_list(args.set_cfgs, target=cfg)
    assert_and_infer_cfg(make_immutable=False, target=cfg)
    return cfg


def check_complete(report: LoadReport, allow_partial: bool) -> None:
    problems = []
    if report.missing:
        problems.append(f"{len(report.missing)} model tensors are not in the file (e.g. {report.missing[:3]})")
    if report.skipped:
        problems.append(f"{len(report.skipped)} have another shape (e.g. {list(report.skipped)[:3]})")
    if problems and not allow_partial:
        raise SystemExit("refusing a partial conversion: " + "; ".join(problems) + " (--allow_partial writes it)")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        weights_path = resolve_weights(args.weights)
        cfg = model_cfg(args, weights_path)
        model = build_model(cfg).eval()
        report = load_weights(model, weights_path, cfg)
    except WeightsError as error:
        raise SystemExit(str(error)) from None
    check_complete(report, args.allow_partial)
    if args.direction == "to_pth":
        checkpoint = {"model": model.state_dict(), "cfg": cfg.dump(), "source": str(args.weights)}
        if report.cfg_text is not None:
            checkpoint["detectron_cfg"] = report.cfg_text
        atomic_write(args.output, lambda handle: torch.save(checkpoint, handle))
    else:
        blobs = {
            name: np.ascontiguousarray(t.numpy(), dtype=np.float32)
            for name, t in model_to_detectron_blobs(model).items()
        }
        data = dumps_detectron_pickle({"blobs": blobs, "cfg": cfg.dump()})
        atomic_write(args.output, lambda handle: handle.write(data))
    logger.info("Wrote %s (%d tensors)", args.output, len(report.loaded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
