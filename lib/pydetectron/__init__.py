"""pydetectron: Detectron-style object detection for PyTorch with compiled ops."""

import torch  # noqa: F401  (loads libtorch before the compiled extension needs it)

__version__ = "0.1.0"

__all__ = ["Prediction", "Predictor", "__version__"]


def __getattr__(name: str):
    """`pydetectron.Predictor` / `Prediction`, imported on first use to keep `import pydetectron` light."""
    if name in ("Predictor", "Prediction"):
        from .engine import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'pydetectron' has no attribute {name!r}")
