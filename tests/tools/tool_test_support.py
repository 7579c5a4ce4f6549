"""Helpers shared by the tool tests."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def direct_ap(json_file, results_file) -> dict[str, float]:
    """Box AP straight from pycocotools: the reference for the AP the tools report."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_file))
        results = json.loads(Path(results_file).read_text())
        evaluator = COCOeval(gt, gt.loadRes(results) if results else COCO(), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(("AP", "AP50", "AP75", "APs", "APm", "APl"), evaluator.stats[:6].tolist()))
