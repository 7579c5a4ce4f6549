"""Adaptive config: BASE_LR, STEPS, MAX_ITER, IMS_PER_BATCH against hand-computed numbers.

The baseline config trains with NUM_GPUS 8 x IMS_PER_BATCH 2 = 16 images per step,
BASE_LR 0.02, STEPS [0, 60000, 80000], MAX_ITER 90000, SNAPSHOT_ITERS 80000 (default).
"""

from pathlib import Path

import pytest
import yaml

from pydetectron.config import get_cfg, merge_cfg_from_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.engine.batch_scaling import adapt_cfg_to_batch, scale_iterations, snapshot_period

CONFIG = Path(__file__).resolve().parents[2] / "configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml"


def baseline():
    cfg = get_cfg()
    merge_cfg_from_file(CONFIG, target=cfg)
    return cfg


def test_batch_of_4_on_one_device():
    cfg = baseline()
    adjustment = adapt_cfg_to_batch(cfg, batch_size=4, iter_size=1, num_gpus=1)
    # batch 16 -> 4: LR x 4/16, iterations x 16/4
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.005)
    assert cfg.SOLVER.STEPS == [0, 240000, 320000]
    assert cfg.SOLVER.MAX_ITER == 360000
    assert cfg.TRAIN.IMS_PER_BATCH == 4 and cfg.NUM_GPUS == 1
    assert adjustment.original_batch_size == 16 and adjustment.effective_batch_size == 4
    assert adjustment.snapshot_period == 80000
    text = "\n".join(adjustment.describe())
    assert "0.02 --> 0.005" in text and "[0, 60000, 80000] --> [0, 240000, 320000]" in text
    assert "90000 --> 360000" in text


def test_iter_size_restores_the_effective_batch():
    cfg = baseline()
    adapt_cfg_to_batch(cfg, batch_size=4, iter_size=4, num_gpus=1)
    # effective batch 4 x 4 = 16 = the config's: schedule unchanged, LR unchanged
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.02)
    assert cfg.SOLVER.STEPS == [0, 60000, 80000]
    assert cfg.SOLVER.MAX_ITER == 90000
    assert cfg.TRAIN.IMS_PER_BATCH == 4


def test_several_devices_and_rounding():
    cfg = baseline()
    adjustment = adapt_cfg_to_batch(cfg, batch_size=6, iter_size=1, num_gpus=2)
    # scale 16 / 6: 60000 -> 160000, 80000 -> 213333.33 -> 213333, 90000 -> 240000
    assert cfg.SOLVER.STEPS == [0, 160000, 213333]
    assert cfg.SOLVER.MAX_ITER == 240000
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.02 * 6 / 16)
    assert cfg.TRAIN.IMS_PER_BATCH == 3 and cfg.NUM_GPUS == 2
    assert adjustment.snapshot_period == 40000  # 80000 / 2 devices


def test_half_iterations_round_up():
    cfg = baseline()
    merge_cfg_from_list(["SOLVER.STEPS", "[0, 5, 7]", "SOLVER.MAX_ITER", "9"], target=cfg)
    adapt_cfg_to_batch(cfg, batch_size=32, iter_size=1, num_gpus=8)
    # scale 16 / 32 = 0.5: 2.5 -> 3, 3.5 -> 4, 4.5 -> 5 (int(x + 0.5), not banker's rounding)
    assert cfg.SOLVER.STEPS == [0, 3, 4]
    assert cfg.SOLVER.MAX_ITER == 5
    assert scale_iterations(5, 0.5) == 3


def test_default_batch_keeps_the_schedule():
    cfg = baseline()
    adapt_cfg_to_batch(cfg, batch_size=None, iter_size=1, num_gpus=8)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, cfg.TRAIN.IMS_PER_BATCH) == (0.02, 90000, 2)


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        adapt_cfg_to_batch(baseline(), batch_size=5, num_gpus=2)
    with pytest.raises(ValueError, match="iter_size"):
        adapt_cfg_to_batch(baseline(), batch_size=4, iter_size=0)


def test_snapshot_period():
    assert snapshot_period(80000, 8) == 10000
    assert snapshot_period(3, 8) == 1
    assert snapshot_period(0, 1) == 0


def test_adapted_config_dumps_and_merges_back():
    cfg = baseline()
    adapt_cfg_to_batch(cfg, batch_size=6, iter_size=2, num_gpus=3)
    again = get_cfg()
    merge_cfg_from_cfg(yaml.safe_load(cfg.dump()), target=again)
    assert again.SOLVER.BASE_LR == cfg.SOLVER.BASE_LR and again.SOLVER.STEPS == cfg.SOLVER.STEPS
    assert again.TRAIN.IMS_PER_BATCH == 2 and again.NUM_GPUS == 3
