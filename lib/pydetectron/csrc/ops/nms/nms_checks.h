// Argument checks and the IoU threshold shared by the CPU and CUDA NMS kernels.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace pydetectron::ops {

inline void check_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores, const char* op) {
  TORCH_CHECK_VALUE(boxes.dim() == 2 && boxes.size(1) == 4, op,
                    ": boxes must be a [N, 4] tensor (x1, y1, x2, y2), got shape ", boxes.sizes());
  TORCH_CHECK_VALUE(scores.dim() == 1 && scores.size(0) == boxes.size(0), op,
                    ": scores must be a [N] tensor with N = boxes.size(0) = ", boxes.size(0),
                    ", got shape ", scores.sizes());
  TORCH_CHECK_VALUE(boxes.device() == scores.device(), op,
                    ": boxes and scores must be on the same device, got ", boxes.device(), " and ",
                    scores.device());
  TORCH_CHECK_TYPE(boxes.scalar_type() == scores.scalar_type(), op,
                   ": boxes and scores must have the same dtype, got ", boxes.scalar_type(),
                   " and ", scores.scalar_type());
}

inline void check_class_indices(const at::Tensor& boxes, const at::Tensor& idxs, const char* op) {
  TORCH_CHECK_VALUE(idxs.dim() == 1 && idxs.size(0) == boxes.size(0), op,
                    ": idxs must be a [N] tensor with N = boxes.size(0) = ", boxes.size(0),
                    ", got shape ", idxs.sizes());
  TORCH_CHECK_VALUE(idxs.device() == boxes.device(), op,
                    ": idxs and boxes must be on the same device, got ", idxs.device(), " and ",
                    boxes.device());
  TORCH_CHECK_TYPE(!idxs.is_floating_point() && !idxs.is_complex(), op,
                   ": idxs must be an integer tensor, got ", idxs.scalar_type());
}

// The IoU threshold in the kernels' compute type T, chosen so that `iou > result` holds
// exactly when `iou > threshold` does in double (the largest T not above threshold).
template <typename T>
T threshold_as(double threshold) {
  T t = static_cast<T>(threshold);
  if (static_cast<double>(t) > threshold) {
    t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  }
  return t;
}

}  // namespace pydetectron::ops
