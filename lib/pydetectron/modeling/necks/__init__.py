"""Necks: modules that turn a body's feature maps into the maps the heads read."""

from .fpn import FPN, FPNConv
from .neck_body import NeckBody, neck_output_strides

__all__ = ["FPN", "FPNConv", "NeckBody", "neck_output_strides"]
