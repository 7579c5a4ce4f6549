"""single_threaded: one intra-op thread inside the block, the previous count restored after."""

import pytest
import torch

from pydetectron.utils.threads import run_single_threaded, single_threaded


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_block_runs_on_one_thread_and_restores(two_threads):
    with single_threaded():
        assert torch.get_num_threads() == 1
        with single_threaded():  # nested: still one, and the outer restore is kept
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_restores_after_an_exception(two_threads):
    with pytest.raises(RuntimeError, match="inside"):
        with single_threaded():
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_decorator_passes_arguments_and_result(two_threads):
    @run_single_threaded
    def threads_and_sum(a, b=0):
        return torch.get_num_threads(), a + b

    assert threads_and_sum(3, b=4) == (1, 7)
    assert threads_and_sum.__name__ == "threads_and_sum"
    assert torch.get_num_threads() == 2
