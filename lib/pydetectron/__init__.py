"""pydetectron: Detectron-style object detection for PyTorch with compiled ops."""

import torch  # noqa: F401  (loads libtorch before the compiled extension needs it)

__version__ = "0.1.0"
