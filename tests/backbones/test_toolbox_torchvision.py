"""torchvision wrappers return exactly torchvision's own intermediate features.

The reference is torchvision's feature extractor (FX graph of the torchvision model) on
the same weights, at nodes listed here by hand from the toolbox's rules.
"""

import pytest
import torch
from toolbox_tables import TORCHVISION_FAMILIES
from torchvision.models.feature_extraction import create_feature_extractor

from pydetectron import backbones
from pydetectron.backbones.toolbox import TORCHVISION_BACKBONES

RESNET_NODES = ["relu", "layer1", "layer2", "layer3", "layer4"]
REGNET_NODES = ["stem"] + [f"trunk_output.block{i}" for i in range(1, 5)]
EFFICIENTNET_NODES = [f"features.{i}.0.block.0" for i in (2, 3, 4, 6)] + ["features.8"]
# After the 1x1 expansion conv of each stride-2 block; MobileNetV3-small's first strided
# block (features.1) has no expansion conv, so its input (the stem output) is taken.
NODES = {
    "mobilenet_v2": [f"features.{i}.conv.0" for i in (2, 4, 7, 14)] + ["features.18"],
    "mobilenet_v3_large": [f"features.{i}.block.0" for i in (2, 4, 7, 13)] + ["features.16"],
    "mobilenet_v3_small": ["features.0"] + [f"features.{i}.block.0" for i in (2, 4, 9)] + ["features.12"],
}
# Light models are compared at 224x224 and 225x301. The heavy ones (over ~8 GFLOPs at 224,
# or slow depthwise-heavy EfficientNets) share their wrapper code with a light model of the
# same family and are compared at a smaller odd size, 97x129, to keep CI short (marked
# slow). Shapes of every model at 224x224 and 225x301 are checked on the meta device
# (test_toolbox_shapes.py).
HEAVY = {
    "resnet101",
    "resnet152",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "regnetx_8gf",
    "regnetx_16gf",
    "regnetx_32gf",
    "regnety_8gf",
    "regnety_16gf",
    "regnety_32gf",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
}


def nodes_for(name: str) -> list[str]:
    if name in NODES:
        return NODES[name]
    if name.startswith(("resnet", "resnext", "wide_resnet")):
        return RESNET_NODES
    if name.startswith("regnet"):
        return REGNET_NODES
    return EFFICIENTNET_NODES


def randomize_norm_statistics(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BatchNorm running statistics, so that eval-mode norms matter."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def reference_model(name: str) -> torch.nn.Module:
    """The torchvision model, allocated without its random init (our weights are copied in)."""
    constructor = TORCHVISION_BACKBONES[name][1]
    try:
        with torch.device("meta"):
            model = constructor(weights=None)
    except NotImplementedError:  # RegNet computes its widths with tensor ops
        return constructor(weights=None)
    return model.to_empty(device="cpu")


def params(name):
    return pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name


@pytest.mark.parametrize("name", [params(n) for n in TORCHVISION_FAMILIES])
@torch.no_grad()
def test_maps_equal_torchvision_features(name):
    generator = torch.Generator().manual_seed(0)
    model = backbones.build_backbone(name).eval()
    randomize_norm_statistics(model, generator)
    reference = reference_model(name).eval()
    result = reference.load_state_dict(model.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(("fc.", "classifier.")) for k in result.missing_keys)
    extractor = create_feature_extractor(reference, nodes_for(name))

    assert model.stride == 32
    assert model.feature_strides == (2, 4, 8, 16, 32)
    sizes = ((97, 129),) if name in HEAVY else ((224, 224), (225, 301))
    for height, width in sizes:
        x = torch.randn(1, 3, height, width, generator=generator)
        maps = model.get_feature_maps(x)
        expected = list(extractor(x).values())
        assert len(maps) == 5
        for level, (ours, theirs, stride, channels) in enumerate(
            zip(maps, expected, (2, 4, 8, 16, 32), model.out_channels_list)
        ):
            assert ours.shape == theirs.shape, (level, ours.shape, theirs.shape)
            assert ours.shape[1] == channels
            # torchvision's convs use "same"-style padding: ceil(size / stride).
            assert ours.shape[-2:] == (-(-height // stride), -(-width // stride))
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        assert torch.equal(model(x), maps[-1])


@pytest.mark.parametrize("name,head", [("resnet18", "fc."), ("mobilenet_v3_small", "classifier.")])
def test_pretrained_accepts_a_torchvision_checkpoint(tmp_path, name, head):
    reference = TORCHVISION_BACKBONES[name][1](weights=None)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    model = backbones.build_backbone(name, pretrained=str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key
    assert any(k.startswith(head) for k in reference.state_dict())

    # Strict apart from the classifier: a missing tensor is an error naming it.
    state = reference.state_dict()
    missing = next(k for k in state if not k.startswith(head))
    del state[missing]
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing"):
        backbones.build_backbone(name, pretrained=str(path))


def test_torchvision_download_arguments_are_refused():
    with pytest.raises(ValueError, match="pretrained="):
        backbones.build_backbone("resnet18", weights="IMAGENET1K_V1")


def test_dilated_mobilenet_is_refused():
    # Dilation replaces the last stride-2 block: the maps would not reach stride 32.
    with pytest.raises(ValueError, match="4 stride-2 blocks"):
        backbones.build_backbone("mobilenet_v3_large", dilated=True)
