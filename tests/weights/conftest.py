"""The weights tests run torch with one intra-op thread: on the shared 2-core CI machine the
small forward passes here are faster without threads fighting for the cores."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
