#!/usr/bin/env python
"""Generate the built-in shapes dataset (COCO json + images), deterministically from a seed.

Examples:
    # the four registered datasets with their default sizes, under data/shapes
    python tools/make_shapes_dataset.py
    # a custom one anywhere (register it with --dataset-spec name=json:images in the tools)
    python tools/make_shapes_dataset.py --out /tmp/my_shapes --num-images 1000 --seed 7 --keypoints
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pydetectron.data.catalog import default_data_dir
from pydetectron.data.shapes import DEFAULT_NUM_IMAGES, ensure_shapes_dataset, write_shapes_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data root; the datasets go to <data-dir>/shapes (default: the repo's data/)",
    )
    parser.add_argument(
        "--out", default=None, help="write one dataset into this folder instead of data/shapes"
    )
    parser.add_argument("--num-images", type=int, default=None, help="images to generate")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default per split)")
    parser.add_argument("--split", choices=sorted(DEFAULT_NUM_IMAGES), default=None)
    parser.add_argument("--keypoints", action="store_true", help="the triangle keypoint variant")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format")
    return parser.parse_args(argv)


def main(argv=None) -> int:
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
