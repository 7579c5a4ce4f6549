"""Norm layers and weight fills against float64 references written here."""

import math

import pytest
import torch
from torch import nn

from pydetectron.nn import (
    AffineChannel2d,
    FrozenBatchNorm2d,
    GroupNormSettings,
    get_group_gn,
    group_norm,
    make_norm,
    msra_fill_,
    xavier_fill_,
)


def test_affine_channel_is_per_channel_scale_and_shift():
    layer = AffineChannel2d(3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
        layer.bias.copy_(torch.tensor([1.0, 0.0, -3.0]))
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.empty_like(x)
    for c, (s, b) in enumerate([(2.0, 1.0), (-1.0, 0.0), (0.5, -3.0)]):
        expected[:, c] = x[:, c] * s + b
    torch.testing.assert_close(layer(x), expected)
    assert not layer.weight.requires_grad and not layer.bias.requires_grad
    assert AffineChannel2d(3, frozen=False).weight.requires_grad


def test_affine_channel_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"AffineChannel2d\(3\)"):
        AffineChannel2d(3)(torch.zeros(1, 4, 2, 2))


def test_frozen_batch_norm_matches_formula_and_eval_batch_norm():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
    bn.eval()
    frozen = FrozenBatchNorm2d(4).double()
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    reference = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + 1e-5
    ) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(frozen(x), reference)
    torch.testing.assert_close(frozen(x), bn(x).detach())
    assert list(frozen.parameters()) == []


def test_convert_frozen_batchnorm_replaces_children_and_keeps_values():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[1].running_var.fill_(4.0)
    out = FrozenBatchNorm2d.convert_frozen_batchnorm(model)
    assert out is model and isinstance(model[1], FrozenBatchNorm2d)
    assert torch.equal(model[1].running_var, torch.full((4,), 4.0))


@pytest.mark.parametrize(
    ("dim", "dim_per_gp", "num_groups", "expected"),
    [(256, -1, 32, 32), (256, 16, -1, 16), (64, 8, -1, 8), (2048, -1, 32, 32)],
)
def test_get_group_gn(dim, dim_per_gp, num_groups, expected):
    settings = GroupNormSettings(dim_per_gp=dim_per_gp, num_groups=num_groups)
    assert get_group_gn(dim, settings) == expected


def test_group_norm_settings_errors():
    with pytest.raises(ValueError, match="only one of"):
        GroupNormSettings(dim_per_gp=16, num_groups=32)
    with pytest.raises(ValueError, match="not divisible by GROUP_NORM.NUM_GROUPS=32"):
        get_group_gn(48, GroupNormSettings())
    with pytest.raises(ValueError, match="DIM_PER_GP=5"):
        get_group_gn(64, GroupNormSettings(dim_per_gp=5, num_groups=-1))


def test_group_norm_forward_matches_reference():
    layer = group_norm(8, dim_per_gp=-1, num_groups=2, eps=1e-3).double()
    assert (layer.num_groups, layer.num_channels, layer.eps) == (2, 8, 1e-3)
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    grouped = x.view(2, 2, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, unbiased=False, keepdim=True)
    reference = ((grouped - mean) / torch.sqrt(var + 1e-3)).view_as(x)
    torch.testing.assert_close(layer(x), reference)


def test_make_norm_kinds():
    assert isinstance(make_norm("AffineChannel", 4), AffineChannel2d)
    assert isinstance(make_norm("FrozenBN", 4), FrozenBatchNorm2d)
    assert isinstance(make_norm("BN", 4), nn.BatchNorm2d)
    gn = make_norm("GN", 64, GroupNormSettings(dim_per_gp=16, num_groups=-1))
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 4
    with pytest.raises(ValueError, match="unknown norm kind 'SyncBN'"):
        make_norm("SyncBN", 4)


def test_xavier_fill_range_and_variance():
    torch.manual_seed(0)
    weight = torch.empty(256, 128, 3, 3)
    xavier_fill_(weight)
    fan_in = 128 * 9
    bound = math.sqrt(3.0 / fan_in)
    assert weight.abs().max() <= bound
    assert weight.std().item() == pytest.approx(math.sqrt(1.0 / fan_in), rel=0.02)


def test_msra_fill_uses_fan_out():
    torch.manual_seed(0)
    weight = torch.empty(64, 256, 3, 3)  # fan_out = 64 * 9, fan_in = 256 * 9
    msra_fill_(weight)
    assert weight.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert weight.std().item() == pytest.approx(math.sqrt(2.0 / (64 * 9)), rel=0.02)
