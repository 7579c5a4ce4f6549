"""Necks: modules that turn a backbone's feature maps into the maps the heads read."""

from .fpn import FPN, FPNConv

__all__ = ["FPN", "FPNConv"]
