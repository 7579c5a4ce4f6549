"""Parameter counts of every toolbox backbone against the vision-toolbox tables."""

import pytest
import torch
from toolbox_tables import SEED_PARAMS_M, TOOLBOX_FAMILIES, TORCHVISION_FAMILIES
from torchvision import models as tv

from pydetectron import backbones
from pydetectron.backbones.toolbox import TORCHVISION_BACKBONES


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_table_entry_is_registered():
    registered = set(backbones.list_backbones())
    assert set(SEED_PARAMS_M) <= registered
    assert set(TORCHVISION_BACKBONES) == set(TORCHVISION_FAMILIES)


@pytest.mark.parametrize("name", TOOLBOX_FAMILIES)
def test_toolbox_family_parameter_count(name):
    with torch.device("meta"):  # shapes only: no memory, no init
        model = backbones.build_backbone(name)
    assert count(model) / 1e6 == pytest.approx(SEED_PARAMS_M[name], rel=0.01)


def _classifier_params(model: torch.nn.Module) -> int:
    head = model.fc if hasattr(model, "fc") else model.classifier
    return count(head)


@pytest.mark.parametrize("name", TORCHVISION_FAMILIES)
def test_torchvision_wrapper_is_torchvision_minus_classifier(name):
    tv_name = TORCHVISION_BACKBONES[name][1].__name__
    # RegNet computes its widths with torch ops at construction, which the meta device refuses.
    device = "cpu" if name.startswith("regnet") else "meta"
    with torch.device(device):
        reference = getattr(tv, tv_name)(weights=None)
        model = backbones.build_backbone(name)
    assert count(model) == count(reference) - _classifier_params(reference)
    assert count(model) / 1e6 == pytest.approx(SEED_PARAMS_M[name], rel=0.01)
    # The wrapper keeps torchvision's names: its state dict is the reference's minus the classifier.
    reference_keys = {k for k in reference.state_dict() if not k.startswith(("fc.", "classifier."))}
    assert set(model.state_dict()) == reference_keys
