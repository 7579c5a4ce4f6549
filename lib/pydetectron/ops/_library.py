"""Loads the compiled extension, which registers the `torch.ops.pydetectron` ops.

The Python modules of `pydetectron.ops` add the fake (meta) kernels and the autograd
formulas to those ops; this module only makes sure the C++ library is loaded first.
"""

import torch

import pydetectron._C  # noqa: F401  (loading the library registers the ops)

OPS = torch.ops.pydetectron
