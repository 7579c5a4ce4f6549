"""GroupNorm helpers with Detectron's GROUP_NORM semantics (``get_group_gn``)."""

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class GroupNormSettings:
    """How many groups a GroupNorm gets, as Detectron's ``GROUP_NORM.*`` keys say.

    Exactly one of ``dim_per_gp`` (channels per group) and ``num_groups`` is used; the
    other must be -1. ``eps`` is the small constant added to the variance.
    """

    dim_per_gp: int = -1
    num_groups: int = 32
    eps: float = 1e-5

    def __post_init__(self):
        if self.dim_per_gp != -1 and self.num_groups != -1:
            raise ValueError(
                "GroupNorm: set only one of GROUP_NORM.DIM_PER_GP and GROUP_NORM.NUM_GROUPS "
                f"(the other must be -1); got DIM_PER_GP={self.dim_per_gp}, "
                f"NUM_GROUPS={self.num_groups}"
            )
        if self.dim_per_gp == -1 and self.num_groups <= 0:
            raise ValueError(f"GroupNorm: GROUP_NORM.NUM_GROUPS must be > 0, got {self.num_groups}")
        if self.num_groups == -1 and self.dim_per_gp <= 0:
            raise ValueError(f"GroupNorm: GROUP_NORM.DIM_PER_GP must be > 0, got {self.dim_per_gp}")

    @classmethod
    def from_cfg(cls, cfg) -> "GroupNormSettings":
        """Read ``GROUP_NORM.DIM_PER_GP``, ``NUM_GROUPS`` and ``EPSILON`` from ``cfg``."""
        gn = cfg.GROUP_NORM
        return cls(dim_per_gp=int(gn.DIM_PER_GP), num_groups=int(gn.NUM_GROUPS), eps=float(gn.EPSILON))


DEFAULT_GN = GroupNormSettings()


def get_group_gn(dim: int, settings: GroupNormSettings = DEFAULT_GN) -> int:
    """Number of GroupNorm groups for ``dim`` channels (Detectron's ``get_group_gn``)."""
    if settings.dim_per_gp > 0:
        if dim % settings.dim_per_gp != 0:
            raise ValueError(
                f"GroupNorm: {dim} channels are not divisible by GROUP_NORM.DIM_PER_GP={settings.dim_per_gp}"
            )
        return dim // settings.dim_per_gp
    if dim % settings.num_groups != 0:
        raise ValueError(f"GroupNorm: {dim} channels are not divisible by GROUP_NORM.NUM_GROUPS={settings.num_groups}")
    return settings.num_groups


def group_norm(
    dim: int,
    dim_per_gp: int = -1,
    num_groups: int = 32,
    eps: float = 1e-5,
) -> nn.GroupNorm:
    """An affine ``nn.GroupNorm`` over ``dim`` channels (scale 1, bias 0, as Detectron)."""
    settings = GroupNormSettings(dim_per_gp=dim_per_gp, num_groups=num_groups, eps=eps)
    return nn.GroupNorm(get_group_gn(dim, settings), dim, eps=settings.eps, affine=True)
