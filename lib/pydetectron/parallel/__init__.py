"""Data parallelism: torch.distributed (DDP, recommended) and the variable-size DataParallel."""

from pydetectron.parallel.data_parallel import VariableSizeDataParallel
from pydetectron.parallel.distributed import (
    DistributedInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    destroy_distributed,
    init_distributed,
    is_distributed,
    launched_by_torchrun,
    unwrap_model,
    wrap_ddp,
)
from pydetectron.parallel.scatter_gather import (
    chunk_sizes,
    gather_outputs,
    move_to,
    scatter_minibatch,
    split_padded_batch,
    unpad_images,
)

__all__ = [
    "DistributedInfo",
    "VariableSizeDataParallel",
    "all_gather_objects",
    "all_reduce_mean",
    "barrier",
    "chunk_sizes",
    "destroy_distributed",
    "gather_outputs",
    "init_distributed",
    "is_distributed",
    "launched_by_torchrun",
    "move_to",
    "scatter_minibatch",
    "split_padded_batch",
    "unpad_images",
    "unwrap_model",
    "wrap_ddp",
]
