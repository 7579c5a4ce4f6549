"""Region proposal network: anchors, heads, proposals, targets, losses and the RPN module."""

from .anchors import AnchorGenerator, detectron_cell_anchors, grid_anchors, torchvision_cell_anchors
from .heads import FPNRPNHead, RPNHead, SingleScaleRPNHead, flatten_rpn_outputs
from .loss import RPNLoss
from .proposals import ProposalGenerator
from .rpn import RPN
from .targets import RPNTargetAssigner, RPNTargets

__all__ = [
    "RPN",
    "AnchorGenerator",
    "FPNRPNHead",
    "ProposalGenerator",
    "RPNHead",
    "RPNLoss",
    "RPNTargetAssigner",
    "RPNTargets",
    "SingleScaleRPNHead",
    "detectron_cell_anchors",
    "flatten_rpn_outputs",
    "grid_anchors",
    "torchvision_cell_anchors",
]
