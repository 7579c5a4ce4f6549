// Argument checks and settings shared by the focal-loss kernels (host code). They raise
// ValueError / TypeError on the Python side and name the argument and the expected form.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "ops/common/focal_math.h"

namespace pydetectron::ops {

inline Reduction parse_reduction(c10::string_view name, const char* op) {
  if (name == "none") return Reduction::kNone;
  if (name == "mean") return Reduction::kMean;
  if (name == "sum") return Reduction::kSum;
  TORCH_CHECK_VALUE(false, op, ": reduction must be 'none', 'mean' or 'sum', got '",
                    std::string(name), "'");
}

inline void check_focal_settings(double alpha, double gamma, const char* op) {
  TORCH_CHECK_VALUE(std::isfinite(alpha), op, ": alpha must be a finite number, got ", alpha);
  TORCH_CHECK_VALUE(std::isfinite(gamma) && gamma >= 0, op,
                    ": gamma must be a finite number >= 0, got ", gamma);
}

// inputs (logits) and targets: floating tensors of one shape, device and dtype.
inline void check_sigmoid_focal_inputs(const at::Tensor& inputs, const at::Tensor& targets,
                                       const char* op) {
  TORCH_CHECK_TYPE(inputs.is_floating_point(), op,
                   ": inputs must be a floating point tensor, got ", inputs.scalar_type());
  TORCH_CHECK_VALUE(targets.sizes() == inputs.sizes(), op,
                    ": targets must have the shape of inputs ", inputs.sizes(), ", got ",
                    targets.sizes());
  TORCH_CHECK_VALUE(inputs.device() == targets.device(), op,
                    ": inputs and targets must be on the same device, got ", inputs.device(),
                    " and ", targets.device());
  TORCH_CHECK_TYPE(inputs.scalar_type() == targets.scalar_type(), op,
                   ": inputs and targets must have the same dtype, got ", inputs.scalar_type(),
                   " and ", targets.scalar_type());
}

// logits [N, C] floating, labels [N] int64 on the same device.
inline void check_softmax_focal_inputs(const at::Tensor& logits, const at::Tensor& labels,
                                       const char* op) {
  TORCH_CHECK_VALUE(logits.dim() == 2, op, ": logits must be a 2-D [N, C] tensor, got shape ",
                    logits.sizes());
  TORCH_CHECK_TYPE(logits.is_floating_point(), op,
                   ": logits must be a floating point tensor, got ", logits.scalar_type());
  TORCH_CHECK_VALUE(labels.dim() == 1 && labels.size(0) == logits.size(0), op,
                    ": labels must be a [N] tensor with N = logits.size(0) = ", logits.size(0),
                    ", got shape ", labels.sizes());
  TORCH_CHECK_TYPE(labels.scalar_type() == at::kLong, op, ": labels must be int64, got ",
                   labels.scalar_type());
  TORCH_CHECK_VALUE(logits.device() == labels.device(), op,
                    ": logits and labels must be on the same device, got ", logits.device(),
                    " and ", labels.device());
}

// The incoming gradient of a backward op: the loss's shape for 'none', one value else.
inline void check_focal_grad(const at::Tensor& grad, Reduction reduction, at::IntArrayRef shape,
                             const at::Tensor& like, const char* op) {
  if (reduction == Reduction::kNone) {
    TORCH_CHECK_VALUE(grad.sizes() == shape, op, ": grad must have shape ", shape, ", got ",
                      grad.sizes());
  } else {
    TORCH_CHECK_VALUE(grad.numel() == 1, op,
                      ": grad of a reduced loss must hold one value, got shape ", grad.sizes());
  }
  TORCH_CHECK_VALUE(grad.device() == like.device(), op, ": grad must be on ", like.device(),
                    ", got ", grad.device());
  TORCH_CHECK_TYPE(grad.scalar_type() == like.scalar_type(), op, ": grad must be ",
                   like.scalar_type(), ", got ", grad.scalar_type());
}

}  // namespace pydetectron::ops
