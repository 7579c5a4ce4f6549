#!/usr/bin/env python
"""Detect objects in images and save Detectron-style pictures (boxes, labels, masks, keypoints).

Examples:
    python tools/infer_simple.py --load_ckpt out/ckpt/model_step999.pth --image_dir demo --output_dir demo_out
    python tools/infer_simple.py --cfg configs/torchvision/fasterrcnn_resnet50_fpn.yaml \
        --load_ckpt fasterrcnn.pth --dataset coco2017 --images a.jpg b.png --output_ext pdf --merge_pdfs

Each readable image gets `<output_dir>/<image name>.<output_ext>` and a log line saying
how many detections were drawn (those scoring >= --thresh); --merge_pdfs also writes
`<output_dir>/results.pdf` with one page per image. Unreadable or truncated images are
reported by name, skipped and counted; the run goes on.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from pydetectron.config import AttrDict, assert_and_infer_cfg
from pydetectron.data.catalog import SHORT_NAMES
from pydetectron.data.shapes import KEYPOINT_NAMES as SHAPES_KEYPOINT_NAMES
from pydetectron.data.shapes import KEYPOINT_SKELETON as SHAPES_KEYPOINT_SKELETON
from pydetectron.data.transforms import ImageReadError
from pydetectron.engine.cli import ToolArgumentParser, UsageError, run_tool
from pydetectron.engine.predictor import Predictor, load_image
from pydetectron.engine.tool_config import checkpoint_and_cfg
from pydetectron.utils.class_names import COCO_KEYPOINT_NAMES, class_names_for_dataset
from pydetectron.utils.logging import setup_logging
from pydetectron.utils.pdf import PdfImageWriter
from pydetectron.utils.vis import vis_one_image

logger = logging.getLogger("infer_simple")

PROG = "infer_simple.py"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")
MERGED_PDF = "results.pdf"


def parse_args(argv=None):
    parser = ToolArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", dest="cfg_file", help="config YAML (default: the one stored in --load_ckpt)")
    parser.add_argument("--load_ckpt", help="our checkpoint / state dict, or a torchvision detection state dict")
    parser.add_argument("--load_detectron", help="Detectron .pkl weights file (model zoo or converted)")
    parser.add_argument(
        "--dataset",
        help="names the classes (and, for a short name like coco2017, sets MODEL.NUM_CLASSES); "
        "default: the first of TRAIN.DATASETS",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image_dir", help="every image file in this folder")
    source.add_argument("--images", nargs="+", help="image files")
    parser.add_argument("--output_dir", default="infer_outputs", help="where the pictures go")
    parser.add_argument("--output_ext", default="png", choices=("png", "jpg", "pdf"), help="picture format")
    parser.add_argument("--thresh", type=float, default=0.7, help="draw detections scoring at least this")
    parser.add_argument("--kp_thresh", type=float, default=2.0, help="draw keypoints scoring above this")
    parser.add_argument("--merge_pdfs", action="store_true", help=f"also write {MERGED_PDF}, one page per image")
    parser.add_argument(
        "--set", dest="set_cfgs", nargs="+", action="extend", default=[], metavar="KEY VALUE", help="config overrides"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU when torch sees one)")
    parser.add_argument("--no_cuda", action="store_true", help="run on the CPU")
    args = parser.parse_args(argv)
    if args.image_dir and not os.path.isdir(args.image_dir):
        parser.error(f"--image_dir: folder not found: {args.image_dir}")
    for flag in ("load_ckpt", "load_detectron", "cfg_file"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            parser.error(f"--{flag.replace('_file', '')}: file not found: {path}")
    if len(args.set_cfgs) % 2:
        parser.error(f"--set needs KEY VALUE pairs, got {args.set_cfgs}")
    return args


def list_images(args) -> list[str]:
    """The images to process (a folder's image files sorted by name, or --images as given)."""
    if args.images:
        return list(args.images)
    names = sorted(n for n in os.listdir(args.image_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
    return [os.path.join(args.image_dir, n) for n in names]


def setup_cfg(args) -> tuple[dict | None, AttrDict]:
    """--load_ckpt and a fresh config: --cfg (or the checkpoint's own), --dataset's class count, --set; frozen."""

    def adjust(cfg: AttrDict) -> None:
        if args.dataset in SHORT_NAMES:
            cfg.MODEL.NUM_CLASSES = SHORT_NAMES[args.dataset].num_classes

    checkpoint, cfg = checkpoint_and_cfg(args.cfg_file, args.load_ckpt, args.set_cfgs, adjust)
    assert_and_infer_cfg(target=cfg)
    return checkpoint, cfg


def labels(cfg: AttrDict, dataset: str | None) -> tuple[list[str], list[str] | None, list | None]:
    """(class names, keypoint names, skeleton) for the pictures."""
    name = dataset or (cfg.TRAIN.DATASETS[0] if cfg.TRAIN.DATASETS else None)
    names = class_names_for_dataset(name, num_classes=int(cfg.MODEL.NUM_CLASSES))
    if name and name.startswith("keypoints_shapes"):
        return names, list(SHAPES_KEYPOINT_NAMES), SHAPES_KEYPOINT_SKELETON
    if name and name.startswith("keypoints_coco"):
        return names, list(COCO_KEYPOINT_NAMES), None
    return names, None, None


def output_path(output_dir: Path, image_path: str, ext: str, taken: set[str], inputs: set[Path]) -> Path:
    """`<stem>.<ext>`, made unique among the outputs and never one of the input files."""
    stem = Path(image_path).stem
    candidate = f"{stem}.{ext}"
    if candidate in taken or (output_dir / candidate).resolve() in inputs:
        candidate = f"{stem}_{Path(image_path).suffix.lstrip('.')}_det.{ext}"
    number = 1
    while candidate in taken or (output_dir / candidate).resolve() in inputs:
        number += 1
        candidate = f"{stem}_{Path(image_path).suffix.lstrip('.')}_det{number}.{ext}"
    taken.add(candidate)
    return output_dir / candidate


def describe_drawn(image_path: str, scores, thresh: float) -> str:
    """How many detections of an image were drawn, or why none was."""
    drawn = int((scores >= thresh).sum())
    if drawn:
        return f"{image_path}: drew {drawn} detection{'s' if drawn != 1 else ''} (score >= --thresh {thresh:g})"
    if len(scores):
        return (f"{image_path}: drew nothing: no detection scored >= --thresh {thresh:g} (the best scored "
                f"{float(scores.max()):.3f}); lower --thresh to see more")  # fmt: skip
    return f"{image_path}: drew nothing: the model detected nothing (TEST.SCORE_THRESH)"


def main(argv=None) -> int:
    """Draw detections; a user error ends with one line on stderr and exit code 2 (--debug: traceback)."""
    return run_tool(_main, argv, PROG)


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    setup_logging()
    checkpoint, cfg = setup_cfg(args)
    weights = checkpoint if checkpoint is not None else args.load_detectron
    if weights is None:
        logger.warning("No weights given (--load_ckpt): using the initial random weights")
    predictor = Predictor(cfg, weights, device="cpu" if args.no_cuda else args.device)
    class_names, keypoint_names, skeleton = labels(cfg, args.dataset)
    images = list_images(args)
    if not images:
        raise UsageError(f"--image_dir: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {args.image_dir}")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    merged = PdfImageWriter() if args.merge_pdfs else None
    failed: list[tuple[str, str]] = []
    written, taken = 0, set()
    inputs = {Path(p).resolve() for p in images}
    for image_path in tqdm(images, desc="images", unit="img", dynamic_ncols=True):
        try:
            image = load_image(image_path)
            prediction = predictor(image)
            picture = vis_one_image(
                image, prediction.boxes, prediction.scores, prediction.classes, class_names,
                masks=prediction.masks, keypoints=prediction.keypoints, keypoint_names=keypoint_names,
                skeleton=skeleton, thresh=args.thresh, kp_thresh=args.kp_thresh,
            )  # fmt: skip
            target = output_path(output_dir, image_path, args.output_ext, taken, inputs)
            if args.output_ext == "pdf":
                single = PdfImageWriter()
                single.add_page(picture)
                single.save(target)
            elif not cv2.imwrite(str(target), picture):
                raise OSError(f"could not write '{target}'")
            if merged is not None:
                merged.add_page(picture)
            written += 1
            logger.info(describe_drawn(image_path, prediction.scores, args.thresh))
        except (ImageReadError, ValueError, OSError, RuntimeError) as error:
            logger.warning("Skipping '%s': %s", image_path, error)
            failed.append((image_path, str(error)))
    logger.info("Wrote %d pictures to %s", written, output_dir)
    if merged is not None and len(merged):
        logger.info("Wrote %s (%d pages)", merged.save(output_dir / MERGED_PDF), len(merged))
    if failed:
        logger.warning("%d of %d images skipped: %s", len(failed), len(images), ", ".join(p for p, _ in failed[:10]))
    return 0 if written or not images else 1


if __name__ == "__main__":
    sys.exit(main())
