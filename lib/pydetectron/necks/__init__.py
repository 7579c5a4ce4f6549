"""Necks for the toolbox backbones: list of maps in (finest first), list of maps out.

    from pydetectron import backbones, necks
    body = backbones.cspdarknet53()
    neck = necks.PAN(body.out_channels_list[-4:], out_channels=256)
    outputs = neck(body.get_feature_maps(x)[-4:])      # strides 4, 8, 16, 32

Every neck has `out_channels` (the width of each output), `num_outputs` and
`output_strides(input_strides)`: output i has the stride of input i; extra outputs, if
any, double the last stride. SemanticFPN has one output, at the finest input's stride.
These are the vision-toolbox necks; Detectron's FPN is pydetectron.modeling.necks.FPN.
"""

from .base import ExtraLevels, Neck
from .bifpn import BiFPN, BiFPNLayer, FusionNode
from .fpn import FPN
from .pan import PAN
from .semantic_fpn import SemanticFPN

__all__ = ["BiFPN", "BiFPNLayer", "ExtraLevels", "FPN", "FusionNode", "Neck", "PAN", "SemanticFPN"]
