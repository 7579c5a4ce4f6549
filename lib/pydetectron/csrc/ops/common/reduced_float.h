// float16 and bfloat16 on CPU: the CPU kernels compute them in float32. The inputs are
// widened (exactly), the float32 kernel runs, and the floating outputs are rounded back
// to the input's type once, so every sum accumulates in float32.
#pragma once

#include <ATen/ATen.h>

namespace pydetectron::ops {

inline bool is_reduced_float(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

}  // namespace pydetectron::ops
