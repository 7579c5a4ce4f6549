"""The registries of box, mask and keypoint heads, keyed by Detectron's config names.

Each entry is a head class whose ``from_cfg`` reads the head's section of the config:
box and keypoint heads ``from_cfg(cfg, dim_in)``, mask heads ``from_cfg(cfg, dim_in,
box_head)`` (``mask_rcnn_fcn_head_v0upshare`` reuses the box head's res5). A head maps
pooled RoI features to a vector or map with ``dim_out`` channels.
"""

from __future__ import annotations

from ..registry import Registry, strip_detectron_add_prefix


def _box_head_key(name: str) -> str:
    """Detectron names, with or without `add_`; early Detectron configs call the module `head_builder`."""
    key = strip_detectron_add_prefix(name)
    return "fast_rcnn_heads." + key[len("head_builder.") :] if key.startswith("head_builder.") else key


BOX_HEADS = Registry("FAST_RCNN.ROI_BOX_HEAD", normalize=_box_head_key)
MASK_HEADS = Registry("MRCNN.ROI_MASK_HEAD", normalize=strip_detectron_add_prefix)
KEYPOINT_HEADS = Registry("KRCNN.ROI_KEYPOINTS_HEAD", normalize=strip_detectron_add_prefix)
