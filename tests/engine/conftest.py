"""Fixtures of the engine tests (helpers are in engine_test_support.py)."""

import pytest
from engine_test_support import write_tiny_shapes


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    """The tiny shapes_train dataset of `write_tiny_shapes`, once per test module."""
    data_dir = tmp_path_factory.mktemp("data")
    write_tiny_shapes(data_dir)
    return data_dir
