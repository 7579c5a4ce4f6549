"""Errors of the weights package: one line each, naming the file, URL or tensor at fault."""

from __future__ import annotations


class WeightsError(ValueError):
    """A weights file or state dict that cannot be used: unreadable, unsafe, or matching nothing."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weights path that names no file (never a reason to train from scratch)."""


class WeightsDownloadError(WeightsError):
    """A weights URL that could not be fetched or whose checksum is wrong; nothing is left in the cache."""
