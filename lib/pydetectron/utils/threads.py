"""Run small CPU ops on one thread.

Every intra-op parallel region wakes the thread pool and waits for its slowest thread. For
large convs that pays; for the many small element-wise passes of target assignment or
proposal selection it does not, and on a loaded machine (more runnable processes than
cores) a pool thread that has been descheduled stalls each region: RPN target assignment
on an 800x1216 batch of 2 took 0.8-2.2 s on 2 threads at load 9 and 0.14 s on one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block's CPU ops with one intra-op thread, then restore the thread count.

    The count is process-wide; it is changed only when it is above one, and CUDA work is
    unaffected.
    """
    threads = torch.get_num_threads()
    if threads <= 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_single_threaded(function: F) -> F:
    """Decorator form of `single_threaded`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with single_threaded():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
