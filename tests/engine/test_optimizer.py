"""Parameter groups (bias / GN / weights) and the LR updates against a Caffe2-style reference."""

import pytest
import torch
from torch import nn

from pydetectron.engine.lr_schedule import LRSchedule
from pydetectron.engine.optimizer import (
    LRUpdater,
    SolverSettings,
    build_optimizer,
    group_parameter_names,
    momentum_rescale_factor,
)
from pydetectron.nn import AffineChannel2d


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = AffineChannel2d(3)
        self.conv = nn.Conv2d(3, 4, 3)
        self.gn = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4, 2)
        self.fc_nobias = nn.Linear(2, 2, bias=False)


def test_groups_follow_detectron_pytorch():
    names = group_parameter_names(Net())
    assert names == {
        "weights": ["conv.weight", "fc.weight", "fc_nobias.weight"],
        "bias": ["conv.bias", "gn.bias", "fc.bias"],
        "gn": ["gn.weight"],
    }


@pytest.mark.parametrize(("double_lr", "bias_decay"), [(True, False), (False, True)])
def test_group_options(double_lr, bias_decay):
    settings = SolverSettings(weight_decay=1e-4, weight_decay_gn=2e-5, bias_double_lr=double_lr,
                              bias_weight_decay=bias_decay)
    optimizer = build_optimizer(Net(), settings, base_lr=0.01)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["weights"]["lr"] == pytest.approx(0.01) and groups["weights"]["weight_decay"] == 1e-4
    assert groups["gn"]["lr"] == pytest.approx(0.01) and groups["gn"]["weight_decay"] == 2e-5
    assert groups["bias"]["lr"] == pytest.approx(0.02 if double_lr else 0.01)
    assert groups["bias"]["weight_decay"] == (1e-4 if bias_decay else 0.0)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 7  # the frozen AffineChannel is left out
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    assert isinstance(build_optimizer(Net(), SolverSettings(optimizer="Adam"), 0.01), torch.optim.Adam)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="SOLVER.TYPE"):
        SolverSettings(optimizer="LBFGS")


def test_momentum_rescale_factor():
    # large change with SCALE_MOMENTUM: Detectron rescales its LR-scaled history, PyTorch's needs nothing
    assert momentum_rescale_factor(0.02, 0.002, True, 1.1) == 1.0
    # small change, or SCALE_MOMENTUM off: Detectron keeps the old history -> old / new here
    assert momentum_rescale_factor(0.010, 0.0105, True, 1.1) == pytest.approx(0.010 / 0.0105)
    assert momentum_rescale_factor(0.02, 0.002, False, 1.1) == pytest.approx(10.0)
    assert momentum_rescale_factor(0.02, 0.02, True, 1.1) == 1.0


def caffe2_reference(params, grads_fn, lrs, mults, decays, mu, scale_momentum, threshold):
    """Detectron's update in float64: V = mu V + lr (g + wd p); p -= V; V *= new/old on big LR changes."""
    params = [p.clone() for p in params]
    history = [torch.zeros_like(p) for p in params]
    current = lrs[0]
    for lr in lrs:
        if lr != current:
            ratio = max(lr / current, current / lr)
            if scale_momentum and current > 1e-7 and ratio > threshold:
                history = [v * (lr / current) for v in history]
            current = lr
        grads = grads_fn(params)
        for i, (p, g) in enumerate(zip(params, grads)):
            history[i] = mu * history[i] + lr * mults[i] * (g + decays[i] * p)
            params[i] = p - history[i]
    return params


@pytest.mark.parametrize("scale_momentum", [True, False])
def test_updates_match_detectron_momentum_rule(scale_momentum):
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    model = nn.Linear(3, 2).double()
    start = [model.weight.detach().clone(), model.bias.detach().clone()]
    # small warm-up changes (ratio < 1.1, not rescaled by Detectron), then a decay by 10 at step 8
    schedule = LRSchedule(base_lr=0.05, policy="steps_with_decay", steps=(0, 8), max_iter=12, warm_up_iters=5,
                          warm_up_factor=0.9)
    lrs = [schedule(step) for step in range(12)]
    settings = SolverSettings(weight_decay=0.01, scale_momentum=scale_momentum)
    optimizer = build_optimizer(model, settings, lrs[0])
    updater = LRUpdater(optimizer, settings)
    for step in range(12):
        optimizer.zero_grad()
        ((model(x) - y) ** 2).sum().mul(0.5).backward()
        updater.set_lr(schedule(step))
        optimizer.step()

    def grads(params):
        weight, bias = params
        residual = x @ weight.T + bias - y
        return [residual.T @ x, residual.sum(0)]

    expected = caffe2_reference(start, grads, lrs, mults=[1.0, 2.0], decays=[0.01, 0.0], mu=0.9,
                                scale_momentum=scale_momentum, threshold=1.1)
    torch.testing.assert_close(model.weight.detach(), expected[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model.bias.detach(), expected[1], rtol=1e-10, atol=1e-12)
    assert updater.lr == pytest.approx(lrs[-1])
