"""RoI heads: the box branch and the branches on its RoIs. Importing registers the branches."""

from . import keypoint_branch, mask_branch  # noqa: F401  (register 'mask' and 'keypoint')
