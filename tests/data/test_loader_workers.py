"""Loader worker count: DATA_LOADER.NUM_THREADS = -1 picks it from the cores available."""

from pathlib import Path

import pytest
import yaml

from pydetectron.data.loader import AUTO_WORKERS, available_cores, default_num_workers, resolve_num_workers

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (3, 1), (4, 2), (6, 4), (64, 4)])
def test_default_workers_from_cores(cores, workers):
    assert default_num_workers(cores) == workers


def test_resolve_num_workers():
    assert resolve_num_workers(AUTO_WORKERS) == default_num_workers(available_cores())
    assert resolve_num_workers(0) == 0 and resolve_num_workers(3) == 3
    with pytest.raises(ValueError, match=r"DATA_LOADER.NUM_THREADS .* got -2"):
        resolve_num_workers(-2)


def test_shapes_configs_pick_workers_from_the_cores():
    for path in sorted((REPO / "configs" / "shapes").glob("*.yaml")):
        assert yaml.safe_load(path.read_text())["DATA_LOADER"]["NUM_THREADS"] == AUTO_WORKERS, path.name
