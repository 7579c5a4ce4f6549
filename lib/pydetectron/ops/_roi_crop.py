"""RoICrop (crop-and-resize, the RoICrop of Detectron.pytorch): `roi_crop`, the
`RoICrop` module, and the autograd and fake-tensor registrations of
`torch.ops.pydetectron.roi_crop`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import as_output_size, as_positive_float, as_rois, check_feature_map
from ._library import OPS


def roi_crop(
    input: Tensor,
    rois: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Bilinear crop-and-resize of each RoI onto an output grid: [K, C, out_h, out_w].

    Equal to `F.affine_grid(theta, align_corners=True)` + `F.grid_sample(bilinear,
    zeros, align_corners=True)` with Detectron.pytorch's RoI transform theta: the grid's
    corners fall on the RoI's corners (x1, y1) and (x2, y2), scaled by `spatial_scale`,
    and pixels outside the map read as zero. A single output row or column samples the
    RoI's centre. `rois` is a [K, 5] tensor (batch_index, x1, y1, x2, y2) or a list of
    per-image [Ki, 4] boxes. The gradient flows to `input`, not to `rois`.
    """
    op = "roi_crop"
    input = check_feature_map(input, op)
    rois = as_rois(rois, input, op)
    height, width = as_output_size(output_size, op)
    return OPS.roi_crop(
        input, rois, as_positive_float(spatial_scale, "spatial_scale", op), height, width
    )


class RoICrop(nn.Module):
    """Module form of `roi_crop`; the settings are fixed at construction."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        self.output_size = as_output_size(output_size, "RoICrop")
        self.spatial_scale = as_positive_float(spatial_scale, "spatial_scale", "RoICrop")

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_crop(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


@torch.library.register_fake("pydetectron::roi_crop")
def _roi_crop_fake(input, rois, spatial_scale, output_height, output_width):
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "rois must be [K, 5]")
    return input.new_empty((rois.shape[0], input.shape[1], output_height, output_width))


@torch.library.register_fake("pydetectron::roi_crop_backward")
def _roi_crop_backward_fake(
    grad, rois, spatial_scale, output_height, output_width, batch_size, channels, height, width
):
    return grad.new_empty((batch_size, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, output_height, output_width = inputs
    ctx.save_for_backward(rois)
    ctx.input_shape = input.shape
    ctx.settings = (spatial_scale, output_height, output_width)


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_input = OPS.roi_crop_backward(grad, rois, *ctx.settings, *ctx.input_shape)
    return grad_input, None, None, None, None


def _setup_context_backward(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.settings = tuple(inputs[2:5])


def _backward_backward(ctx, grad_grad_input):
    """roi_crop_backward is linear in `grad`; its adjoint is roi_crop itself."""
    (rois,) = ctx.saved_tensors
    return (OPS.roi_crop(grad_grad_input, rois, *ctx.settings),) + (None,) * 8


torch.library.register_autograd("pydetectron::roi_crop", _backward, setup_context=_setup_context)
torch.library.register_autograd(
    "pydetectron::roi_crop_backward", _backward_backward, setup_context=_setup_context_backward
)
