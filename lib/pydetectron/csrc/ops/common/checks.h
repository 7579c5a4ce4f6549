// Argument checks shared by the op kernels. They raise ValueError / TypeError on the
// Python side (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE) and name the argument and the
// expected form, so a bad call never reaches a kernel that could read out of bounds.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

namespace pydetectron::ops {

// input [N, C, H, W] and rois [K, 5] (batch_index, x1, y1, x2, y2), same device and dtype.
inline void check_roi_op_inputs(const at::Tensor& input, const at::Tensor& rois, const char* op) {
  TORCH_CHECK_VALUE(input.dim() == 4, op, ": input must be a 4-D [N, C, H, W] tensor, got shape ",
                    input.sizes());
  TORCH_CHECK_VALUE(rois.dim() == 2 && rois.size(1) == 5, op,
                    ": rois must be a [K, 5] tensor (batch_index, x1, y1, x2, y2), got shape ",
                    rois.sizes());
  TORCH_CHECK_VALUE(input.device() == rois.device(), op,
                    ": input and rois must be on the same device, got ", input.device(), " and ",
                    rois.device());
  TORCH_CHECK_TYPE(input.scalar_type() == rois.scalar_type(), op,
                   ": input and rois must have the same dtype, got ", input.scalar_type(), " and ",
                   rois.scalar_type());
}

inline void check_output_size(int64_t height, int64_t width, const char* op) {
  TORCH_CHECK_VALUE(height > 0 && width > 0, op, ": output_size must be positive, got (", height,
                    ", ", width, ")");
}

// Backward ops: grad [K, C, PH, PW] against rois [K, 5].
inline void check_roi_grad(const at::Tensor& grad, const at::Tensor& rois, int64_t channels,
                           int64_t pooled_height, int64_t pooled_width, const char* op) {
  TORCH_CHECK_VALUE(rois.dim() == 2 && rois.size(1) == 5, op,
                    ": rois must be a [K, 5] tensor (batch_index, x1, y1, x2, y2), got shape ",
                    rois.sizes());
  TORCH_CHECK_VALUE(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == channels &&
                        grad.size(2) == pooled_height && grad.size(3) == pooled_width,
                    op, ": grad must have shape [", rois.size(0), ", ", channels, ", ",
                    pooled_height, ", ", pooled_width, "], got ", grad.sizes());
  TORCH_CHECK_VALUE(grad.device() == rois.device(), op,
                    ": grad and rois must be on the same device");
  TORCH_CHECK_TYPE(grad.scalar_type() == rois.scalar_type(), op,
                   ": grad and rois must have the same dtype, got ", grad.scalar_type(), " and ",
                   rois.scalar_type());
}

// CPU only (reads the values): every batch index is a whole number in [0, batch_size).
template <typename T>
void check_batch_indices_cpu(const T* rois, int64_t num_rois, int64_t batch_size, const char* op) {
  for (int64_t n = 0; n < num_rois; ++n) {
    const T b = rois[n * 5];
    TORCH_CHECK_VALUE(b >= 0 && b < static_cast<T>(batch_size) && std::floor(b) == b, op,
                      ": rois[", n, ", 0] = ", static_cast<double>(b),
                      " is not a batch index in [0, ", batch_size, ")");
  }
}

}  // namespace pydetectron::ops
