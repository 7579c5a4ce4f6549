"""Two gloo DDP processes with one image each update like one process with both images."""

import socket

import pytest
import torch
import torch.multiprocessing as mp
from engine_test_support import ddp_worker, train_tiny, write_tiny_shapes

from pydetectron.engine.checkpoint import load_checkpoint

STEPS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two processes importing torch: about 10-25 s on 2 cores
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs the gloo backend")
def test_two_gloo_processes_match_one_process_with_the_same_total_batch(tmp_path):
    data_dir = tmp_path / "data"
    write_tiny_shapes(data_dir)
    single_model, single = train_tiny(data_dir, tmp_path / "single", ims_per_batch=2, steps=STEPS)

    ddp_dir = tmp_path / "ddp"
    mp.spawn(ddp_worker, args=(2, free_port(), str(data_dir), str(ddp_dir), STEPS), nprocs=2, join=True)
    ddp = torch.load(ddp_dir / "rank0.pth", weights_only=True)

    for name, value in single_model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    for ddp_values, single_values in zip(ddp["history"], single.history):
        assert ddp_values["loss"] == pytest.approx(single_values["loss"], rel=1e-5)
    # only rank 0 wrote, and the checkpoint holds the RNG state of both processes
    assert sorted(p.name for p in (ddp_dir / "ckpt").iterdir()) == ["last_checkpoint", f"model_step{STEPS - 1}.pth"]
    checkpoint = load_checkpoint(ddp_dir / "ckpt" / f"model_step{STEPS - 1}.pth")
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng_per_rank"]) == 2
