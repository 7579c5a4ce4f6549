"""RoIPool (Fast R-CNN max pooling): `roi_pool`, the `RoIPool` module, and the autograd
and fake-tensor registrations of `torch.ops.pydetectron.roi_pool`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import as_output_size, as_positive_float, as_rois, check_feature_map
from ._library import OPS


def roi_pool(
    input: Tensor,
    rois: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Max over each bin of each RoI (rounded to whole pixels): [K, C, out_h, out_w].

    `rois` is a [K, 5] tensor (batch_index, x1, y1, x2, y2) or a list of per-image
    [Ki, 4] boxes; `spatial_scale` maps them onto `input`. Empty bins give 0.
    """
    op = "roi_pool"
    input = check_feature_map(input, op)
    rois = as_rois(rois, input, op)
    height, width = as_output_size(output_size, op)
    output, _ = OPS.roi_pool(
        input, rois, as_positive_float(spatial_scale, "spatial_scale", op), height, width
    )
    return output


class RoIPool(nn.Module):
    """Module form of `roi_pool`; the settings are fixed at construction."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = as_output_size(output_size, "RoIPool")
        self.spatial_scale = as_positive_float(spatial_scale, "spatial_scale", "RoIPool")

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


@torch.library.register_fake("pydetectron::roi_pool")
def _roi_pool_fake(input, rois, spatial_scale, pooled_height, pooled_width):
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "rois must be [K, 5]")
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)


@torch.library.register_fake("pydetectron::roi_pool_backward")
def _roi_pool_backward_fake(
    grad, rois, argmax, spatial_scale, pooled_height, pooled_width, batch_size, channels, height,
    width,
):
    return grad.new_empty((batch_size, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, pooled_height, pooled_width = inputs
    _, argmax = output
    ctx.mark_non_differentiable(argmax)
    ctx.save_for_backward(rois, argmax)
    ctx.input_shape = input.shape
    ctx.settings = (spatial_scale, pooled_height, pooled_width)


def _backward(ctx, grad, _grad_argmax):
    rois, argmax = ctx.saved_tensors
    grad_input = OPS.roi_pool_backward(grad, rois, argmax, *ctx.settings, *ctx.input_shape)
    return grad_input, None, None, None, None


def _setup_context_backward(ctx, inputs, output):
    grad, rois, argmax = inputs[:3]
    ctx.save_for_backward(rois, argmax)


def _backward_backward(ctx, grad_grad_input):
    """roi_pool_backward scatters grad to the argmax pixels; its adjoint gathers them."""
    rois, argmax = ctx.saved_tensors
    batch_size, channels = grad_grad_input.shape[:2]
    planes = grad_grad_input.reshape(batch_size, channels, -1)
    batch_index = rois[:, 0].long()
    picked = planes[batch_index].reshape(argmax.shape[0], channels, -1)
    flat = argmax.reshape(argmax.shape[0], channels, -1)
    gathered = picked.gather(2, flat.clamp(min=0).long()) * (flat >= 0)
    return (gathered.reshape(argmax.shape),) + (None,) * 9


torch.library.register_autograd("pydetectron::roi_pool", _backward, setup_context=_setup_context)
torch.library.register_autograd(
    "pydetectron::roi_pool_backward", _backward_backward, setup_context=_setup_context_backward
)
