"""RetinaNet (Detectron's single-stage baselines): anchors, dense head, targets, focal loss, inference."""

from .anchors import retinanet_anchor_generator, retinanet_anchor_sizes
from .head import RetinaNetHead, flatten_dense_outputs
from .inference import RetinaNetPostProcessor
from .loss import RetinaNetLoss
from .retinanet import RetinaNet
from .targets import RetinaNetTargetAssigner, RetinaNetTargets

__all__ = [
    "RetinaNet",
    "RetinaNetHead",
    "RetinaNetLoss",
    "RetinaNetPostProcessor",
    "RetinaNetTargetAssigner",
    "RetinaNetTargets",
    "flatten_dense_outputs",
    "retinanet_anchor_generator",
    "retinanet_anchor_sizes",
]
