"""A short report of the software and devices a run uses (printed by the tools at start)."""

from __future__ import annotations

import platform
import sys

import numpy as np
import torch


def compiled_ops_info() -> str:
    """Whether the compiled extension loads, and whether it holds CUDA kernels."""
    try:
        from pydetectron import _C
    except ImportError as error:
        return f"compiled ops not importable ({error})"
    build = getattr(_C, "build_info", None)
    return f"compiled ops: {build()}" if callable(build) else "compiled ops loaded"


def collect_env_info() -> str:
    """Python, numpy, torch, CUDA and GPU names, the compiled ops, one per line."""
    import pydetectron

    lines = [
        f"pydetectron {pydetectron.__version__} ({compiled_ops_info()})",
        f"python {sys.version.split()[0]} on {platform.platform()}",
        f"numpy {np.__version__}, torch {torch.__version__}",
        f"torch CUDA build: {torch.version.cuda or 'none'}, CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            lines.append(f"GPU {index}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    lines.append(f"CPU threads used by torch: {torch.get_num_threads()}")
    return "\n".join(lines)
