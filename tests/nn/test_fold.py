"""Norm folding: folded conv -> norm pairs against the unfolded layers, in float64 and end to end.

References are the norm modules' own forwards (and, for the formulas, float64 expressions
written here); the end-to-end check runs `Predictor` with and without folding on models of
every norm kind and compares the detections.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pydetectron import Predictor
from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.engine.checkpoint import load_checkpoint, save_checkpoint
from pydetectron.modeling.backbones import ResNetBody
from pydetectron.nn import (
    AffineChannel2d,
    ConvNormFolding,
    FoldCache,
    FrozenBatchNorm2d,
    GroupNormSettings,
    apply_norm_,
    fold_conv_norm,
    fold_norms,
    group_norm,
    is_foldable,
    norm_scale_shift,
    run_conv_norm,
)

REPO = Path(__file__).resolve().parents[2]


def _randomise_norm(norm: nn.Module, generator: torch.Generator) -> nn.Module:
    """Scales, shifts and statistics far from the identity, so a wrong fold shows."""
    with torch.no_grad():
        for name, tensor in [*norm.named_parameters(recurse=False), *norm.named_buffers(recurse=False)]:
            if tensor.dtype.is_floating_point:
                if name in ("weight", "running_var"):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) + 0.5)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype))
    return norm


def _norms(channels: int, generator: torch.Generator) -> dict[str, nn.Module]:
    bn = nn.BatchNorm2d(channels)
    return {
        "AffineChannel": _randomise_norm(AffineChannel2d(channels), generator),
        "FrozenBN": _randomise_norm(FrozenBatchNorm2d(channels, eps=1e-3), generator),
        "BN": _randomise_norm(bn, generator).eval(),
    }


@pytest.mark.parametrize("kind", ["AffineChannel", "FrozenBN", "BN"])
def test_scale_shift_reproduces_the_norm(kind):
    g = torch.Generator().manual_seed(0)
    norm = _norms(6, g)[kind].double()
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64, generator=g)
    scale, shift = norm_scale_shift(norm)
    torch.testing.assert_close(x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), norm(x).detach())
    if kind != "AffineChannel":  # the textbook formula, written out
        mean, var, eps = norm.running_mean, norm.running_var, norm.eps
        reference = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)
        reference = reference * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(norm(x).detach(), reference)


def test_norms_that_cannot_fold():
    assert norm_scale_shift(group_norm(8, num_groups=2)) is None
    assert norm_scale_shift(nn.BatchNorm2d(8).train()) is None
    assert norm_scale_shift(nn.BatchNorm2d(8, track_running_stats=False).eval()) is None
    assert not is_foldable(nn.BatchNorm2d(8)) and is_foldable(nn.BatchNorm2d(8).eval())
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match="GroupNorm cannot be folded"):
        fold_conv_norm(conv, group_norm(8, num_groups=2))
    with pytest.raises(ValueError, match="4 channels follows a conv with 8 outputs"):
        fold_conv_norm(conv, FrozenBatchNorm2d(4))


@pytest.mark.parametrize("kind", ["AffineChannel", "FrozenBN", "BN"])
@pytest.mark.parametrize(
    "conv_kwargs",
    [
        {"kernel_size": 1, "bias": False},
        {"kernel_size": 3, "padding": 2, "dilation": 2, "groups": 2, "bias": True},
        {"kernel_size": 3, "stride": 2, "padding": 1, "bias": False},
    ],
)
def test_folded_conv_equals_conv_then_norm(kind, conv_kwargs):
    g = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(4, 6, **conv_kwargs).double()
    norm = _norms(6, g)[kind].double()
    x = torch.randn(2, 4, 9, 11, dtype=torch.float64, generator=g)
    weight, bias = fold_conv_norm(conv, norm)
    assert weight.dtype == torch.float64 and weight.shape == conv.weight.shape
    torch.testing.assert_close(conv._conv_forward(x, weight, bias), norm(conv(x)).detach())


def test_fold_keeps_the_weight_layout_and_dtype():
    conv = nn.Conv2d(4, 6, 3)
    conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    weight, bias = fold_conv_norm(conv, FrozenBatchNorm2d(6))
    assert weight.dtype == torch.float32 and bias.dtype == torch.float32
    assert weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kind", ["AffineChannel", "FrozenBN", "BN"])
def test_apply_norm_in_place(kind):
    g = torch.Generator().manual_seed(2)
    norm = _norms(5, g)[kind].double()
    for parameter in norm.parameters():
        parameter.requires_grad_(False)
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64, generator=g)
    expected = norm(x)
    out = apply_norm_(norm, x)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(out, expected)


def test_apply_norm_out_of_place_when_it_must():
    g = torch.Generator().manual_seed(3)
    for norm in (group_norm(8, num_groups=2), nn.BatchNorm2d(8).train(), AffineChannel2d(8, frozen=False)):
        x = torch.randn(2, 8, 3, 3, generator=g)
        before = x.clone()
        expected = norm(x.clone())
        out = apply_norm_(norm, x)
        assert torch.equal(x, before)  # the input was not written
        torch.testing.assert_close(out, expected)


def test_training_fold_gives_the_unfolded_gradients():
    """A trainable conv before a frozen norm: the differentiable fold gives the same
    output and gradients (input and weight) as conv -> norm."""
    g = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(4, 6, 3, padding=1).double()
    norm = _randomise_norm(FrozenBatchNorm2d(6), g).double()
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64, generator=g, requires_grad=True)
    grad = torch.randn(2, 6, 7, 7, dtype=torch.float64, generator=g)
    folded = run_conv_norm(conv, norm, x, fold=True)
    fx, fw, fb = torch.autograd.grad(folded, (x, conv.weight, conv.bias), grad)
    plain = norm(conv(x))
    px, pw, pb = torch.autograd.grad(plain, (x, conv.weight, conv.bias), grad)
    torch.testing.assert_close(folded, plain)
    for a, b in ((fx, px), (fw, pw), (fb, pb)):
        torch.testing.assert_close(a, b)


def test_fold_cache_follows_weight_changes():
    g = torch.Generator().manual_seed(5)
    conv = nn.Conv2d(3, 4, 1, bias=False).double()
    norm = _randomise_norm(FrozenBatchNorm2d(4), g).double()
    cache = FoldCache()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64, generator=g)
    with torch.no_grad():
        first = run_conv_norm(conv, norm, x, fold=True, cache=cache)
        assert cache.params is not None
        torch.testing.assert_close(first, norm(conv(x)))
        # new weights loaded in place (as load_state_dict does) and new statistics
        conv.load_state_dict({"weight": torch.randn(4, 3, 1, 1, dtype=torch.float64, generator=g)})
        norm.running_var.mul_(3.0)
        second = run_conv_norm(conv, norm, x, fold=True, cache=cache)
        torch.testing.assert_close(second, norm(conv(x)))
        assert not torch.allclose(first, second)


def _body(norm: str) -> ResNetBody:
    torch.manual_seed(0)
    body = ResNetBody(
        (1, 1, 1, 1),
        width_per_group=4,
        norm=norm,
        gn=GroupNormSettings(num_groups=2),
        freeze_at=0,
        out_features=["res2", "res5"],
    )
    g = torch.Generator().manual_seed(6)
    for module in body.modules():
        if isinstance(module, AffineChannel2d | FrozenBatchNorm2d | nn.BatchNorm2d | nn.GroupNorm):
            _randomise_norm(module, g)
    return body.eval()


@pytest.mark.parametrize("norm", ["AffineChannel", "FrozenBN", "BN", "GN"])
def test_fold_norms_on_a_body_is_exact_and_leaves_the_state_dict(norm):
    body = _body(norm)
    before = {name: (t.clone(), t.data_ptr()) for name, t in body.state_dict().items()}
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert fold_norms(body, enabled=False) == 0
        expected = body(x)
        pairs = fold_norms(body)
        folded = body(x)
    blocks = [m for m in body.modules() if isinstance(m, ConvNormFolding)]
    assert pairs == (0 if norm == "GN" else sum(len(m.conv_norm_pairs) for m in blocks))
    for name in expected:
        # float32 rounding: relative to the map's magnitude
        scale = float(expected[name].abs().max())
        torch.testing.assert_close(folded[name], expected[name], rtol=1e-4, atol=1e-5 * scale)
    after = body.state_dict()
    assert list(after) == list(before)
    for name, tensor in after.items():
        assert torch.equal(tensor, before[name][0]) and tensor.data_ptr() == before[name][1], name
    with torch.no_grad():
        fold_norms(body, enabled=False)
        torch.testing.assert_close(body(x)["res5"], expected["res5"], rtol=0, atol=0)


def test_folded_batch_norm_body_trains_with_batch_statistics():
    """After folding, train mode must use BatchNorm's batch statistics again (no fold)."""
    body = _body("BN")
    reference = _body("BN")
    fold_norms(reference, enabled=False)
    with torch.no_grad():
        body(torch.randn(1, 3, 32, 32))  # folded in eval mode: the cache is filled
    body.train()
    reference.train()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(body(x)["res5"], reference(x)["res5"], rtol=0, atol=0)


def test_body_convs_are_channels_last_and_return_channels_last_maps():
    body = _body("FrozenBN")
    assert all(
        m.weight.is_contiguous(memory_format=torch.channels_last) for m in body.modules() if isinstance(m, nn.Conv2d)
    )
    with torch.no_grad():
        out = body(torch.randn(1, 3, 64, 64))
    assert out["res2"].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("folded", [True, False])
@pytest.mark.parametrize("trainable_norms", [True, False])
def test_training_step_matches_reference_blocks(folded, trainable_norms):
    """Folded norms, in-place norms, residual adds and ReLUs keep autograd right: gradients
    of a trainable body equal those of the same layers run out of place with F.* calls."""
    body = _body("AffineChannel").double().train()
    fold_norms(body, enabled=folded)
    for name, parameter in body.named_parameters():
        parameter.requires_grad_(trainable_norms or "conv" in name)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(9))

    def affine(norm, y):
        return y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)

    def reference(x):
        y = F.max_pool2d(F.relu(affine(body.stem.norm1, body.stem.conv1(x))), 3, 2, 1)
        for stage in (body.res2, body.res3, body.res4, body.res5):
            for block in stage:
                out = F.relu(affine(block.norm1, block.conv1(y)))
                out = F.relu(affine(block.norm2, block.conv2(out)))
                out = affine(block.norm3, block.conv3(out))
                identity = y if block.shortcut is None else affine(block.shortcut.norm, block.shortcut.conv(y))
                y = F.relu(out + identity)
        return y

    params = [p for p in body.parameters() if p.requires_grad]
    ours = torch.autograd.grad(body(x)["res5"].square().sum(), params)
    theirs = torch.autograd.grad(reference(x).square().sum(), params)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- end to end

THIN_MODEL = [
    "MODEL.NUM_CLASSES", "6",
    "RESNETS.WIDTH_PER_GROUP", "8",
    "GROUP_NORM.NUM_GROUPS", "8",
    "FPN.DIM", "32",
    "FAST_RCNN.MLP_HEAD_DIM", "64",
    "TEST.SCALE", "160",
    "TEST.MAX_SIZE", "224",
    "TEST.RPN_PRE_NMS_TOP_N", "400",
    "TEST.RPN_POST_NMS_TOP_N", "120",
    "TEST.SCORE_THRESH", "0.2",
    "PIXEL_STDS", "(57.4, 57.1, 58.4)",  # inputs of unit scale keep the random heads' deltas small
]  # fmt: skip
NORM_OPTIONS = {
    "AffineChannel": [],
    "FrozenBN": ["RESNETS.NORM", "FrozenBN"],
    "BN": ["RESNETS.NORM", "BN", "TRAIN.FREEZE_AT", "0"],
    "GN": [
        "RESNETS.TRANS_FUNC", "bottleneck_gn_transformation",
        "RESNETS.STEM_FUNC", "basic_gn_stem",
        "RESNETS.SHORTCUT_FUNC", "basic_gn_shortcut",
    ],
}  # fmt: skip


def _thin_cfg(norm: str):
    cfg = get_cfg()
    merge_cfg_from_file(REPO / "configs" / "baselines" / "e2e_faster_rcnn_R-50-FPN_1x.yaml", target=cfg)
    merge_cfg_from_list(THIN_MODEL + NORM_OPTIONS[norm], target=cfg)
    assert_and_infer_cfg(target=cfg)
    return cfg


def _thin_weights(cfg) -> dict:
    """Initial weights with random norms that keep the activations' scale (per-channel gains
    0.8-1.2, as trained networks have) and a confident classifier (real detections)."""
    from pydetectron.modeling.model_builder import build_model

    torch.manual_seed(0)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(10)
    for module in model.modules():
        if isinstance(module, AffineChannel2d | FrozenBatchNorm2d | nn.BatchNorm2d):
            _randomise_norm(module, g)
            with torch.no_grad():
                gain = torch.rand(module.weight.shape, generator=g) * 0.4 + 0.8
                if hasattr(module, "running_var"):
                    gain = gain * torch.sqrt(module.running_var + module.eps)
                    module.running_mean.mul_(0.1)
                module.weight.copy_(gain)
                module.bias.mul_(0.1)
    with torch.no_grad():
        model.roi_heads.box.outputs.cls_score.weight.normal_(0, 0.02, generator=g)
    return {"model": model.state_dict()}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on a busy 2-core machine the thin model runs faster that way."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("norm", ["AffineChannel", "FrozenBN", "BN", "GN"])
def test_folded_detections_equal_unfolded(norm):
    cfg = _thin_cfg(norm)
    weights = _thin_weights(cfg)
    image = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    predictor = Predictor(cfg, weights, device="cpu")  # folds by default
    assert (predictor.folded_norms == 0) == (norm == "GN")
    got = predictor(image)
    assert fold_norms(predictor.model, enabled=False) == 0
    expected = predictor(image)
    assert len(expected) >= 3, "the thin model should detect something"
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got.classes, expected.classes)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.boxes, expected.boxes, rtol=0, atol=1e-3)


def test_checkpoint_saved_after_inference_equals_the_one_before(tmp_path):
    cfg = _thin_cfg("FrozenBN")
    weights = _thin_weights(cfg)
    predictor = Predictor(cfg, weights, device="cpu")
    before = save_checkpoint({"model": predictor.model.state_dict()}, tmp_path / "before.pth")
    predictor(np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    after = save_checkpoint({"model": predictor.model.state_dict()}, tmp_path / "after.pth")
    saved_before, saved_after = load_checkpoint(before)["model"], load_checkpoint(after)["model"]
    assert list(saved_after) == list(saved_before) == list(weights["model"])
    for name, tensor in saved_after.items():
        assert torch.equal(tensor, saved_before[name]), name
        assert torch.equal(tensor, weights["model"][name]), name


def test_hooks_on_a_folded_conv_still_run():
    body = _body("FrozenBN")
    seen = []
    body.stem.conv1.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with torch.no_grad():
        folded = body(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(11)))["res2"]
    assert seen == [torch.Size([1, 64, 16, 16])]
    fold_norms(body, enabled=False)
    with torch.no_grad():
        plain = body(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(11)))["res2"]
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
