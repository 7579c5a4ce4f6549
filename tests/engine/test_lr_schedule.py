"""LR policies and warm-up against values computed by hand from Detectron's formulas."""

import math
from pathlib import Path

import pytest

from pydetectron.config import get_cfg, merge_cfg_from_file
from pydetectron.engine.lr_schedule import LRSchedule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def detectron_1x(**overrides) -> LRSchedule:
    values = dict(
        base_lr=0.02, policy="steps_with_decay", gamma=0.1, steps=(0, 60000, 80000), max_iter=90000,
        warm_up_iters=500, warm_up_factor=1.0 / 3.0, warm_up_method="linear",
    )
    values.update(overrides)
    return LRSchedule(**values)


def test_linear_warm_up_then_step_decay():
    schedule = detectron_1x()
    assert schedule(0) == pytest.approx(0.02 / 3)
    # alpha = 250 / 500: factor = 1/3 * 0.5 + 0.5 = 2/3
    assert schedule(250) == pytest.approx(0.02 * 2 / 3)
    assert schedule(499) == pytest.approx(0.02 * (1 / 3 * (1 / 500) + 499 / 500))
    assert schedule(500) == pytest.approx(0.02)
    assert schedule(59999) == pytest.approx(0.02)
    assert schedule(60000) == pytest.approx(0.002)
    assert schedule(79999) == pytest.approx(0.002)
    assert schedule(80000) == pytest.approx(0.0002)
    assert schedule(89999) == pytest.approx(0.0002)


def test_constant_warm_up():
    schedule = detectron_1x(warm_up_method="constant", warm_up_factor=0.1)
    assert schedule(0) == pytest.approx(0.002)
    assert schedule(499) == pytest.approx(0.002)
    assert schedule(500) == pytest.approx(0.02)


def test_warm_up_multiplies_the_decayed_policy_value():
    # Detectron's get_lr_at_iter: policy value times warm-up factor
    schedule = detectron_1x(steps=(0, 10), warm_up_iters=20)
    assert schedule(15) == pytest.approx(0.02 * 0.1 * (1 / 3 * 0.25 + 0.75))


def test_no_warm_up():
    assert detectron_1x(warm_up_iters=0)(0) == pytest.approx(0.02)


def test_other_policies():
    step = LRSchedule(base_lr=0.1, policy="step", gamma=0.5, step_size=100, max_iter=1000, warm_up_iters=0)
    assert [step(i) for i in (0, 99, 100, 250)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    lrs = LRSchedule(base_lr=9.0, policy="steps_with_lrs", steps=(0, 10, 20), lrs=(0.3, 0.03, 0.003), warm_up_iters=0)
    assert [lrs(i) for i in (0, 10, 25)] == pytest.approx([0.3, 0.03, 0.003])
    relative = LRSchedule(base_lr=0.2, policy="steps_with_relative_lrs", steps=(0, 10), lrs=(1.0, 0.5),
                          warm_up_iters=0)
    assert [relative(i) for i in (5, 10)] == pytest.approx([0.2, 0.1])
    cosine = LRSchedule(base_lr=0.04, policy="cosine_decay", max_iter=1000, warm_up_iters=0)
    assert [cosine(i) for i in (0, 500, 750)] == pytest.approx([0.04, 0.02, 0.02 * (1 + math.cos(0.75 * math.pi))])
    exp = LRSchedule(base_lr=0.04, policy="exp_decay", gamma=0.01, max_iter=1000, warm_up_iters=0)
    assert [exp(i) for i in (0, 500, 1000)] == pytest.approx([0.04, 0.004, 0.0004])


def test_from_cfg_reads_a_detectron_config():
    cfg = get_cfg()
    merge_cfg_from_file(CONFIGS / "baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml", target=cfg)
    schedule = LRSchedule.from_cfg(cfg)
    assert schedule == detectron_1x()
    assert LRSchedule.from_dict(schedule.as_dict()) == schedule


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"policy": "poly"}, "LR_POLICY"),
        ({"steps": (60000, 80000)}, "must start with 0"),
        ({"steps": (0, 80000, 60000)}, "non-decreasing"),
        ({"policy": "steps_with_lrs", "lrs": (0.1,)}, "SOLVER.LRS"),
        ({"warm_up_method": "cubic"}, "WARM_UP_METHOD"),
        ({"max_iter": 0}, "MAX_ITER"),
    ],
)
def test_bad_settings_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        detectron_1x(**overrides)
