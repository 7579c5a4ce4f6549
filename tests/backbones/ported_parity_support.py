"""Helpers for the ported-backbone parity tests: randomised timm references and strict comparisons.

timm (a test-only dependency) is the independent reference: a timm model is built and its
parameters randomised (every parameter timm initialises to a constant, such as LayerScale
1e-6, GRN zeros, norm ones and zero biases, gets noise, and tokens get a visible spread) so
that no block is a near-identity; its state dict is then loaded into our model and outputs
are compared at 1e-5 in float32.
"""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")

ATOL = 1e-5


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every constant-initialised parameter (and the tokens) random values, in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("cls_token", "dist_token", "reg_token", "latent", "pos_embed"):
                param.normal_(0.0, 0.05, generator=generator)
            elif param.numel() == 1 or float(param.float().std()) == 0.0:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model


def timm_reference(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """timm's `name` without its classifier (num_classes=0), randomised, in eval mode."""
    torch.manual_seed(seed)
    return randomize_(timm.create_model(name, pretrained=False, num_classes=0, **kwargs), seed).eval()


def timm_pooled(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's pre-logits features."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_matches(ours: torch.Tensor, reference: torch.Tensor, what: str = "output") -> None:
    """Same shape and every element within ATOL (float32)."""
    assert ours.shape == reference.shape, f"{what}: shape {tuple(ours.shape)} vs reference {tuple(reference.shape)}"
    diff = (ours - reference).abs().max().item()
    assert diff <= ATOL, f"{what}: max |difference| {diff:.3g} > {ATOL}"


def assert_all_match(ours: list[torch.Tensor], reference: list[torch.Tensor], what: str = "maps") -> None:
    assert len(ours) == len(reference), f"{what}: {len(ours)} maps vs reference {len(reference)}"
    for i, (a, b) in enumerate(zip(ours, reference)):
        assert_matches(a, b, f"{what}[{i}]")
