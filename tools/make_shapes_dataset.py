#!/usr/bin/env python
"""Generate the built-in shapes dataset (COCO json + images), deterministically from a seed.

Examples:
    # the four registered datasets with their default sizes, under data/shapes
    python tools/make_shapes_dataset.py
    # the same under another data root (also: the PYDETECTRON_DATA_DIR environment variable)
    python tools/make_shapes_dataset.py --data_dir /data
    # a custom one anywhere; the tools take it as --dataset my_shapes=<out>/annotations.json:<out>/images
    python tools/make_shapes_dataset.py --out /tmp/my_shapes --num_images 1000 --seed 7 --keypoints

Flags also accept the dashed spelling (--data-dir, --num-images).
"""

from __future__ import annotations

import logging
import os
import sys

from pydetectron.data.catalog import default_data_dir
from pydetectron.data.shapes import DEFAULT_NUM_IMAGES, ensure_shapes_dataset, write_shapes_dataset
from pydetectron.engine.cli import ToolArgumentParser, run_tool

PROG = "make_shapes_dataset.py"


def parse_args(argv=None):
    parser = ToolArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data_dir",
        default=None,
        help="data root; the datasets go to <data_dir>/shapes (default: $PYDETECTRON_DATA_DIR, else the "
        "checkout's data/)",
    )
    parser.add_argument(
        "--out", default=None, help="write one dataset into this folder instead of data/shapes"
    )
    parser.add_argument("--num_images", type=int, default=None, help="images to generate")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default per split)")
    parser.add_argument("--split", choices=sorted(DEFAULT_NUM_IMAGES), default=None)
    parser.add_argument("--keypoints", action="store_true", help="the triangle keypoint variant")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    args = parser.parse_args(argv)
    if args.num_images is not None and args.num_images < 1:
        parser.error(f"--num_images must be >= 1, got {args.num_images}")
    return args


def main(argv=None) -> int:
    """Generate; a user error ends with one line on stderr and exit code 2 (--debug: traceback)."""
    return run_tool(_main, argv, PROG)


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.out:
        json_path = write_shapes_dataset(
            args.out,
            num_images=args.num_images or DEFAULT_NUM_IMAGES[args.split or "train"],
            seed=0 if args.seed is None else args.seed,
            keypoints=args.keypoints,
            image_format=args.format,
        )
        print(f"wrote {json_path}")
        return 0
    root = os.path.join(args.data_dir or default_data_dir(), "shapes")
    splits = [args.split] if args.split else sorted(DEFAULT_NUM_IMAGES)
    variants = [args.keypoints] if args.keypoints else [False, True]
    for keypoints in variants:
        for split in splits:
            out = ensure_shapes_dataset(
                root, split, keypoints, args.num_images, args.seed, args.format
            )
            print(f"{out} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
