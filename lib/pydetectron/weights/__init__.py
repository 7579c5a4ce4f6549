"""Loading weights into pydetectron models: own checkpoints and torchvision detection models.

`load_weights` detects the format, never executes code from a file (`torch.load` with
`weights_only=True`), checks shapes, and reports what it did not use.
"""

from .loader import LoadReport, load_weights

__all__ = ["LoadReport", "load_weights"]
