"""COCO AP of a set of weights on the test datasets, for evaluation during training.

It reuses the test tool's pieces: `infer_range` (loader workers read the images, the main
process detects; unreadable or truncated images are named, skipped and counted) and
`evaluate_dataset` (result jsons + pycocotools). The predictor is built on first use, so
building it draws no random numbers before training starts.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from pydetectron.data import build_test_dataset
from pydetectron.data.roidb import Roidb
from pydetectron.engine.predictor import Predictor
from pydetectron.evaluation import evaluate_dataset, infer_range, merge_ranges

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """`evaluator(weights, step)` -> {"bbox/AP": ..., "bbox/AP50": ..., ...} (fractions of 1).

    Keys are `<task>/<metric>` for the first dataset and, with several datasets, also
    `<dataset>/<task>/<metric>` for each. The result jsons of the latest evaluation go to
    `output_dir/<dataset>/` (with `output_dir` None, to a temporary folder removed after).
    """

    def __init__(
        self,
        make_predictor: Callable[[], Predictor],
        datasets: Sequence[tuple[str, Roidb]],
        output_dir: str | os.PathLike | None,
        plus_one: bool = True,
        num_workers: int = 0,
    ):
        if not datasets:
            raise ValueError("evaluation needs at least one test dataset (TEST.DATASETS is empty)")
        self.make_predictor = make_predictor
        self.datasets = list(datasets)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.plus_one = plus_one
        self.num_workers = num_workers
        self._predictor: Predictor | None = None

    @classmethod
    def from_cfg(cls, cfg, output_dir: str | os.PathLike | None, device: torch.device | str) -> DatasetEvaluator:
        """Evaluate on TEST.DATASETS with the test settings of `cfg` (a frozen tree)."""
        datasets = [(name, build_test_dataset(cfg, name)) for name in cfg.TEST.DATASETS]
        return cls(
            lambda: Predictor(cfg, None, device=device),
            datasets,
            output_dir,
            plus_one=bool(cfg.MODEL.BOX_PLUS_ONE),
            num_workers=int(cfg.DATA_LOADER.NUM_THREADS),
        )

    def __call__(self, weights: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        if self.output_dir is not None:
            return self._evaluate(weights, step, self.output_dir)
        with tempfile.TemporaryDirectory(prefix="pydetectron_eval_") as scratch:
            return self._evaluate(weights, step, Path(scratch))

    def _evaluate(self, weights: dict[str, torch.Tensor], step: int, output_dir: Path) -> dict[str, float]:
        if self._predictor is None:
            self._predictor = self.make_predictor()
        predictor = self._predictor
        predictor.model.load_state_dict(weights)
        predictor.model.eval()
        flat: dict[str, float] = {}
        for position, (name, roidb) in enumerate(self.datasets):
            part = infer_range(predictor, roidb, 0, len(roidb), f"step {step}", self.num_workers)
            images = merge_ranges([part], len(roidb))
            failed = sum(1 for image in images if image.error)
            if failed:
                logger.warning("%s: %d of %d images could not be read and were skipped", name, failed, len(images))
            metrics = evaluate_dataset(
                images, name, roidb.info.json_file, roidb.info.contiguous_category_id_to_json_id,
                output_dir / name, plus_one=self.plus_one, print_summary=False,
            )  # fmt: skip
            for task, values in metrics.items():
                for metric, value in values.items():
                    if position == 0:
                        flat[f"{task}/{metric}"] = float(value)
                    if len(self.datasets) > 1:
                        flat[f"{name}/{task}/{metric}"] = float(value)
        return flat
