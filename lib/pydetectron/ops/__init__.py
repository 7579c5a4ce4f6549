"""Compiled detection ops (NMS, RoIAlign, RoIPool, RoICrop, focal losses) on CPU and CUDA.

Each op is a torch custom op under `torch.ops.pydetectron` with autograd, fake
tensors (torch.compile / export) and autocast (computed in float32); the functions
here check their arguments and convert a list of per-image boxes into [K, 5] rois.
float16 and bfloat16 tensors compute in float32 on CPU.
"""

from ._focal_loss import sigmoid_focal_loss, softmax_focal_loss
from ._nms import batched_nms, nms
from ._roi_align import RoIAlign, roi_align
from ._roi_crop import RoICrop, roi_crop
from ._roi_pool import RoIPool, roi_pool

__all__ = [
    "RoIAlign",
    "RoICrop",
    "RoIPool",
    "batched_nms",
    "nms",
    "roi_align",
    "roi_crop",
    "roi_pool",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]
