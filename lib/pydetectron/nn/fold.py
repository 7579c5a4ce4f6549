"""Conv -> norm pairs: the norm folded into the conv, or applied in place on its output.

A norm whose effect is a fixed per-channel affine map (``AffineChannel2d``,
``FrozenBatchNorm2d``, ``nn.BatchNorm2d`` in eval mode with running statistics) can be
folded into the conv before it: ``norm(conv(x)) == conv'(x)`` with
``weight' = weight * scale`` (per output channel) and ``bias' = bias * scale + shift``.
That removes the norm's passes over the conv output (forward, and backward in training).
GroupNorm (and BatchNorm in training) normalise with statistics of the data and cannot
fold; they run as usual.

Modules that run conv -> norm pairs derive from ``ConvNormFolding``, list the pairs in
``conv_norm_pairs`` and call ``self.conv_norm(index, x)``; their ``norms_folded`` flag is
on by default. ``fold_norms(model, enabled)`` sets it for a whole model (``Predictor``
calls it; ``enabled=False`` gives the unfolded computation, e.g. to compare). Folding
never touches a parameter or buffer, so state dicts and saved checkpoints stay as they
are. Without gradients the folded weights are cached per pair and recomputed whenever a
source tensor changes (new values, device or dtype), so loading other weights after
folding is safe; when gradients are needed (training with trainable convs) the fold is
recomputed differentiably at each call, which gives the unfolded gradients.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .affine_channel import AffineChannel2d
from .frozen_batch_norm import FrozenBatchNorm2d


def norm_scale_shift(norm: nn.Module, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) [C] with ``norm(x) == x * scale + shift`` per channel, or None when
    `norm` is not a fixed affine map right now (GroupNorm, BatchNorm in training mode or
    without running statistics). `dtype` is the computation's type (default the norm's)."""

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t if dtype is None else t.to(dtype)

    if isinstance(norm, AffineChannel2d):
        return cast(norm.weight), cast(norm.bias)
    if isinstance(norm, FrozenBatchNorm2d):
        weight, bias, mean, var, eps = norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.eps
    elif isinstance(norm, nn.BatchNorm2d):
        if norm.training or norm.running_mean is None or norm.running_var is None:
            return None
        weight, bias, mean, var, eps = norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.eps
    else:
        return None
    scale = (cast(var) + eps).rsqrt()
    if weight is not None:
        scale = scale * cast(weight)
    shift = -cast(mean) * scale
    if bias is not None:
        shift = shift + cast(bias)
    return scale, shift


def is_foldable(norm: nn.Module) -> bool:
    """Whether `norm` is a fixed per-channel affine map now (see `norm_scale_shift`)."""
    if isinstance(norm, AffineChannel2d | FrozenBatchNorm2d):
        return True
    return isinstance(norm, nn.BatchNorm2d) and not norm.training and norm.running_mean is not None


def fold_conv_norm(
    conv: nn.Conv2d, norm: nn.Module, dtype: torch.dtype | None = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a conv equal to ``norm(conv(x))``, in the conv's dtype and layout.

    The products are formed in `dtype` (float64 by default, so the folded conv matches
    the unfolded pair to float32 rounding); None keeps the conv's dtype, which is what a
    differentiable fold in training uses. Raises ValueError if `norm` cannot fold.
    """
    scale_shift = norm_scale_shift(norm, dtype)
    if scale_shift is None:
        raise ValueError(f"{type(norm).__name__} cannot be folded into a conv (it is not a fixed affine map now)")
    scale, shift = scale_shift
    if scale.shape[0] != conv.out_channels:
        raise ValueError(f"a norm over {scale.shape[0]} channels follows a conv with {conv.out_channels} outputs")
    weight = conv.weight if dtype is None else conv.weight.to(dtype)
    folded_weight = (weight * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype)
    bias = shift if conv.bias is None else shift + (conv.bias if dtype is None else conv.bias.to(dtype)) * scale
    return folded_weight, bias.to(conv.weight.dtype)


def apply_norm_(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``, written into `x` when the norm is a fixed affine map with nothing to
    learn (saves a full-size output); `x` must be a temporary the caller owns, such as a
    conv's output (a conv's backward does not read its output). Other norms (GroupNorm:
    its fused kernel is faster than statistics plus an in-place pass) run as they are."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in _tensors(norm))
    scale_shift = None if needs_grad else norm_scale_shift(norm)
    if scale_shift is None:
        return norm(x)
    if x.dim() != 4 or x.shape[1] != scale_shift[0].shape[0]:
        return norm(x)  # the norm's own forward reports the wrong shape
    scale, shift = scale_shift
    return x.mul_(scale.view(1, -1, 1, 1)).add_(shift.view(1, -1, 1, 1))


def _tensors(module: nn.Module) -> Iterable[torch.Tensor]:
    yield from module.parameters(recurse=False)
    yield from module.buffers(recurse=False)


class FoldCache:
    """The folded (weight, bias) of one conv -> norm pair and the state it was made from.

    Not a module and not in any state dict; the key holds each source tensor's version
    counter, storage, device and dtype, so in-place updates (``load_state_dict``,
    optimizer steps) and moves (``.to()``) invalidate it.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.params: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _key(conv: nn.Conv2d, norm: nn.Module) -> tuple:
        tensors = [*_tensors(conv), *_tensors(norm)]
        return tuple((t._version, t.data_ptr(), t.device, t.dtype) for t in tensors) + (norm.training,)

    def get(self, conv: nn.Conv2d, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        key = self._key(conv, norm)
        if key != self.key or self.params is None:
            self.params = None  # free the stale copy before making the new one
            with torch.no_grad():
                self.params = fold_conv_norm(conv, norm)
            self.key = key
        return self.params

    def clear(self) -> None:
        self.key, self.params = None, None


def run_conv_norm(
    conv: nn.Conv2d, norm: nn.Module, x: torch.Tensor, fold: bool, cache: FoldCache | None = None
) -> torch.Tensor:
    """``norm(conv(x))``: one folded conv when `fold` and the norm can fold now (cached in
    `cache` when no gradient is needed), else the conv followed by `apply_norm_`."""
    if fold and is_foldable(norm):
        tensors = [*_tensors(conv), *_tensors(norm)]
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            weight, bias = fold_conv_norm(conv, norm, dtype=None)
        elif cache is not None:
            weight, bias = cache.get(conv, norm)
        else:
            weight, bias = fold_conv_norm(conv, norm)
        if _has_forward_hooks(conv):  # watched (a recorder, a counter): call it as a module
            return torch.func.functional_call(conv, {"weight": weight, "bias": bias}, (x,))
        return conv._conv_forward(x, weight, bias)
    return apply_norm_(norm, conv(x))


def _has_forward_hooks(module: nn.Module) -> bool:
    hooks = nn.modules.module
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or hooks._global_forward_hooks
        or hooks._global_forward_pre_hooks
    )


class ConvNormFolding:
    """Mixin for modules whose forward runs the conv -> norm pairs named in
    ``conv_norm_pairs`` through ``self.conv_norm(index, x)``.

    With ``norms_folded`` (the default) every pair whose norm can fold right now runs as
    one conv; the others (and all pairs when it is off) run the conv, then the norm in place
    where nothing is learned through it (`apply_norm_`).
    """

    conv_norm_pairs: tuple[tuple[str, str], ...] = ()
    norms_folded: bool = True

    def conv_norm(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """``norm(conv(x))`` for pair ``conv_norm_pairs[index]``."""
        conv_name, norm_name = self.conv_norm_pairs[index]
        caches = self.__dict__.setdefault("_fold_caches", {})
        cache = caches.setdefault(index, FoldCache())
        if not self.norms_folded:
            cache.clear()
        return run_conv_norm(getattr(self, conv_name), getattr(self, norm_name), x, self.norms_folded, cache)


def fold_norms(model: nn.Module, enabled: bool = True) -> int:
    """Fold (or with ``enabled=False`` unfold) the norms of every conv -> norm pair in `model`.

    Returns how many pairs fold now (their norm is a fixed affine map: AffineChannel2d,
    FrozenBatchNorm2d, or BatchNorm2d in eval mode; GroupNorm never folds). Parameters
    and buffers are left untouched, so the state dict is the same before and after.
    """
    folded = 0
    for module in model.modules():
        if isinstance(module, ConvNormFolding):
            module.norms_folded = bool(enabled)
            if enabled:
                folded += sum(is_foldable(getattr(module, norm)) for _, norm in module.conv_norm_pairs)
            else:
                for cache in module.__dict__.get("_fold_caches", {}).values():
                    cache.clear()
    return folded
