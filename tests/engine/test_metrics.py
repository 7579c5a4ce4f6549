"""Smoothed values, time formatting, memory readings and the metrics writers."""

import json

import pytest

from pydetectron.engine.metrics import JSONLinesWriter, SmoothedValue, TensorBoardWriter, memory_mb
from pydetectron.utils.timer import Timer, format_seconds


def test_smoothed_value_keeps_a_window():
    value = SmoothedValue(window=3)
    for x in (10.0, 1.0, 2.0, 7.0):
        value.add(x)
    assert list(value.values) == [1.0, 2.0, 7.0]
    assert value.median == 2.0 and value.mean == pytest.approx(10.0 / 3)


def test_format_seconds():
    assert format_seconds(3725.2) == "1:02:05"
    assert format_seconds(0) == "0:00:00"
    assert format_seconds(2 * 86400 + 59) == "2 days, 0:00:59"


def test_timer_average():
    timer = Timer()
    for _ in range(3):
        timer.tic()
        timer.toc()
    assert timer.calls == 3 and timer.average_time == pytest.approx(timer.total_time / 3)


def test_memory_is_reported_on_the_cpu():
    assert memory_mb("cpu") > 1.0


def test_json_lines_are_appended_across_runs(tmp_path):
    path = tmp_path / "out" / "metrics.jsonl"
    for step in (0, 5):
        writer = JSONLinesWriter(path)
        writer.write(step, {"loss": 0.5 + step, "lr": 0.01})
        writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"step": 0, "loss": 0.5, "lr": 0.01}, {"step": 5, "loss": 5.5, "lr": 0.01}]


def test_tensorboard_writer_creates_an_event_file(tmp_path):
    writer = TensorBoardWriter(tmp_path)
    writer.write(3, {"loss": 1.0})
    writer.close()
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
