"""Check evaluation metrics against expected values (Detectron's EXPECTED_RESULTS).

Each expectation is `[dataset, task, metric, value]`; the value is a number (passes when
|actual - value| <= atol + rtol * |value|) or `[mean, std]` (passes strictly inside
mean +- sigma_tol * std). Tasks take Detectron's names (`box`, `mask`, `keypoint`) or
metrics.json's (`bbox`, `segm`, `keypoints`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

logger = logging.getLogger(__name__)

TASK_NAMES = {"box": "bbox", "mask": "segm", "keypoint": "keypoints", "bbox": "bbox", "segm": "segm",
              "keypoints": "keypoints"}  # fmt: skip


def check_expected_results(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
    expectations: Sequence[Sequence],
    atol: float = 0.005,
    rtol: float = 0.1,
    sigma_tol: float = 4.0,
) -> list[str]:
    """Log a PASS / FAIL line per expectation; return the FAIL lines.

    Raises ValueError (naming EXPECTED_RESULTS) for an expectation that is malformed or
    names a dataset, task or metric the evaluation did not produce.
    """
    failures = []
    for expectation in expectations:
        if len(expectation) != 4:
            raise ValueError(f"EXPECTED_RESULTS: expected [dataset, task, metric, value], got {expectation!r}")
        dataset, task, metric, expected = expectation
        task_key = TASK_NAMES.get(task, task)
        found = metrics.get(dataset, {}).get(task_key, {})
        if metric not in found:
            raise ValueError(
                f"EXPECTED_RESULTS: no {dataset} > {task} > {metric} in the results "
                f"(they hold {sorted((d, t) for d, tasks in metrics.items() for t in tasks)})"
            )
        actual = float(found[metric])
        where = f"{dataset} > {task} > {metric} (actual vs. expected): {actual:.4f} vs. "
        if isinstance(expected, list | tuple):
            if len(expected) != 2:
                raise ValueError(f"EXPECTED_RESULTS: a range is [mean, std], got {expected!r}")
            mean, std = float(expected[0]), float(expected[1])
            low, high = mean - sigma_tol * std, mean + sigma_tol * std
            ok = low < actual < high
            line = where + f"mean={mean:.4f}, std={std:.4f}, range=({low:.4f}, {high:.4f})"
        else:
            error, tolerance = abs(actual - float(expected)), atol + rtol * abs(float(expected))
            ok = error <= tolerance
            line = where + f"{float(expected):.4f}, err={error:.4f}, tol={tolerance:.4f}"
        if ok:
            logger.info("PASS: %s", line)
        else:
            logger.error("FAIL: %s", line)
            failures.append("FAIL: " + line)
    return failures
