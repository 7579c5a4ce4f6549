"""RoIAlign (Mask R-CNN): `roi_align`, the `RoIAlign` module, and the autograd and
fake-tensor registrations of `torch.ops.pydetectron.roi_align`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import (
    as_bool,
    as_int,
    as_output_size,
    as_positive_float,
    as_rois,
    check_feature_map,
)
from ._library import OPS


def roi_align(
    input: Tensor,
    rois: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Average of bilinear samples over each bin of each RoI: [K, C, out_h, out_w].

    `rois` is a [K, 5] tensor (batch_index, x1, y1, x2, y2) or a list of per-image
    [Ki, 4] boxes, in image pixels; `spatial_scale` maps them onto `input` (1 / stride).
    `sampling_ratio` <= 0 uses ceil(roi_size / output_size) samples per bin and axis.
    `aligned=True` shifts the RoI by -0.5 pixel (Detectron2); False is Detectron's.
    """
    op = "roi_align"
    input = check_feature_map(input, op)
    rois = as_rois(rois, input, op)
    height, width = as_output_size(output_size, op)
    return OPS.roi_align(
        input,
        rois,
        as_positive_float(spatial_scale, "spatial_scale", op),
        height,
        width,
        as_int(sampling_ratio, "sampling_ratio", op),
        as_bool(aligned, "aligned", op),
    )


class RoIAlign(nn.Module):
    """Module form of `roi_align`; the settings are fixed at construction."""

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float = 1.0,
        sampling_ratio: int = -1,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        op = "RoIAlign"
        self.output_size = as_output_size(output_size, op)
        self.spatial_scale = as_positive_float(spatial_scale, "spatial_scale", op)
        self.sampling_ratio = as_int(sampling_ratio, "sampling_ratio", op)
        self.aligned = as_bool(aligned, "aligned", op)

    def forward(self, input: Tensor, rois: Tensor | list[Tensor]) -> Tensor:
        return roi_align(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


@torch.library.register_fake("pydetectron::roi_align")
def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    torch._check(rois.dim() == 2 and rois.shape[1] == 5, lambda: "rois must be [K, 5]")
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.register_fake("pydetectron::roi_align_backward")
def _roi_align_backward_fake(
    grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width,
    sampling_ratio, aligned,
):
    return grad.new_empty((batch_size, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.input_shape = input.shape
    ctx.settings = (spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned = ctx.settings
    batch_size, channels, height, width = ctx.input_shape
    grad_input = OPS.roi_align_backward(
        grad, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels, height,
        width, sampling_ratio, aligned,
    )
    return grad_input, None, None, None, None, None, None


def _setup_context_backward(ctx, inputs, output):
    grad, rois, spatial_scale, pooled_height, pooled_width = inputs[:5]
    sampling_ratio, aligned = inputs[9:]
    ctx.save_for_backward(rois)
    ctx.settings = (spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)


def _backward_backward(ctx, grad_grad_input):
    """roi_align_backward is linear in `grad`; its adjoint is roi_align itself."""
    (rois,) = ctx.saved_tensors
    grad_grad = OPS.roi_align(grad_grad_input, rois, *ctx.settings)
    return (grad_grad,) + (None,) * 10


torch.library.register_autograd("pydetectron::roi_align", _backward, setup_context=_setup_context)
torch.library.register_autograd(
    "pydetectron::roi_align_backward", _backward_backward, setup_context=_setup_context_backward
)
