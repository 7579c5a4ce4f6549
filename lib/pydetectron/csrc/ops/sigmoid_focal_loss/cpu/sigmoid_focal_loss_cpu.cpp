// CPU kernels of pydetectron::sigmoid_focal_loss and its backward.
//
// One pass over the logits and targets: every element's loss (or gradient) comes from
// the formulas of sigmoid_focal_loss_math.h with no intermediate tensors. float32 uses
// the vectorisable math of cpu_fast_math.h in loops compiled for AVX-512, AVX2 and the
// baseline (cpu_vector_clones.h); float16 and bfloat16 compute in float32.
// The reductions sum fixed chunks of elements in parallel and add the chunk sums in
// double, in chunk order, so the result does not depend on the number of threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/common/cpu_fast_math.h"
#include "ops/common/cpu_vector_clones.h"
#include "ops/common/focal_checks.h"
#include "ops/common/reduced_float.h"
#include "ops/sigmoid_focal_loss/sigmoid_focal_loss_math.h"

namespace pydetectron::ops::cpu {
namespace {

template <typename T>
using CpuMath = std::conditional_t<std::is_same_v<T, float>, FastMath, PreciseMath>;

constexpr int64_t kChunk = 1 << 15;  // elements per work item of the reductions
constexpr int64_t kBlock = 256;      // elements summed in T before going to double

// The loops, for one power policy P (focal_math.h): no branch per element.
template <typename T, typename P>
PYDET_ALWAYS_INLINE void loss_elements(const T* x, const T* t, int64_t begin, int64_t end,
                                       SigmoidFocalSettings<T> s, P power, T* out) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    out[i] = sigmoid_focal_loss_value<CpuMath<T>>(x[i], t[i], s, power);
  }
}

template <typename T, typename P>
PYDET_ALWAYS_INLINE double loss_sum(const T* x, const T* t, int64_t begin, int64_t end,
                                    SigmoidFocalSettings<T> s, P power) {
  double total = 0;
  for (int64_t b = begin; b < end; b += kBlock) {
    const int64_t e = std::min(end, b + kBlock);
    T block = 0;
#pragma omp simd reduction(+ : block)
    for (int64_t i = b; i < e; ++i) {
      block += sigmoid_focal_loss_value<CpuMath<T>>(x[i], t[i], s, power);
    }
    total += block;
  }
  return total;
}

// Gradients of elements [begin, end): `grad` holds one per element, or is null and
// `grad_value` applies to all. grad_t may be null (no gradient for the targets).
template <typename T, typename P>
PYDET_ALWAYS_INLINE void grad_elements(const T* grad, T grad_value, const T* x, const T* t,
                                       int64_t begin, int64_t end, SigmoidFocalSettings<T> s,
                                       P power, T* grad_x, T* grad_t) {
  using M = CpuMath<T>;
  if (grad != nullptr) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      grad_x[i] = grad[i] * sigmoid_focal_grad_input<M>(x[i], t[i], s, power);
    }
  } else {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      grad_x[i] = grad_value * sigmoid_focal_grad_input<M>(x[i], t[i], s, power);
    }
  }
  if (grad_t == nullptr) return;
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const T g = grad != nullptr ? grad[i] : grad_value;
    grad_t[i] = g * sigmoid_focal_grad_target<M>(x[i], t[i], s, power);
  }
}

// The same for a gamma: gamma = 2 gets the exact square.
template <typename T>
PYDET_ALWAYS_INLINE void loss_range(const T* x, const T* t, int64_t begin, int64_t end,
                                    SigmoidFocalSettings<T> s, T gamma, T* out) {
  if (gamma == T(2)) {
    loss_elements(x, t, begin, end, s, SquarePower<T>{}, out);
  } else {
    loss_elements(x, t, begin, end, s, GeneralPower<CpuMath<T>, T>::of(gamma), out);
  }
}

template <typename T>
PYDET_ALWAYS_INLINE double sum_range(const T* x, const T* t, int64_t begin, int64_t end,
                                     SigmoidFocalSettings<T> s, T gamma) {
  if (gamma == T(2)) return loss_sum(x, t, begin, end, s, SquarePower<T>{});
  return loss_sum(x, t, begin, end, s, GeneralPower<CpuMath<T>, T>::of(gamma));
}

template <typename T>
PYDET_ALWAYS_INLINE void grad_range(const T* grad, T grad_value, const T* x, const T* t,
                                    int64_t begin, int64_t end, SigmoidFocalSettings<T> s,
                                    T gamma, T* grad_x, T* grad_t) {
  if (gamma == T(2)) {
    grad_elements(grad, grad_value, x, t, begin, end, s, SquarePower<T>{}, grad_x, grad_t);
  } else {
    grad_elements(grad, grad_value, x, t, begin, end, s, GeneralPower<CpuMath<T>, T>::of(gamma),
                  grad_x, grad_t);
  }
}

// The float32 instances, compiled for each vector width (cpu_vector_clones.h).
PYDET_VECTOR_CLONES void loss_range_f32(const float* x, const float* t, int64_t begin,
                                        int64_t end, SigmoidFocalSettings<float> s, float gamma,
                                        float* out) {
  loss_range(x, t, begin, end, s, gamma, out);
}

PYDET_VECTOR_CLONES double sum_range_f32(const float* x, const float* t, int64_t begin,
                                         int64_t end, SigmoidFocalSettings<float> s,
                                         float gamma) {
  return sum_range(x, t, begin, end, s, gamma);
}

PYDET_VECTOR_CLONES void grad_range_f32(const float* grad, float grad_value, const float* x,
                                        const float* t, int64_t begin, int64_t end,
                                        SigmoidFocalSettings<float> s, float gamma,
                                        float* grad_x, float* grad_t) {
  grad_range(grad, grad_value, x, t, begin, end, s, gamma, grad_x, grad_t);
}

template <typename T>
void run_loss_range(const T* x, const T* t, int64_t begin, int64_t end,
                    SigmoidFocalSettings<T> s, T gamma, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    loss_range_f32(x, t, begin, end, s, gamma, out);
  } else {
    loss_range(x, t, begin, end, s, gamma, out);
  }
}

template <typename T>
double run_sum_range(const T* x, const T* t, int64_t begin, int64_t end,
                     SigmoidFocalSettings<T> s, T gamma) {
  if constexpr (std::is_same_v<T, float>) {
    return sum_range_f32(x, t, begin, end, s, gamma);
  } else {
    return sum_range(x, t, begin, end, s, gamma);
  }
}

template <typename T>
void run_grad_range(const T* grad, T grad_value, const T* x, const T* t, int64_t begin,
                    int64_t end, SigmoidFocalSettings<T> s, T gamma, T* grad_x, T* grad_t) {
  if constexpr (std::is_same_v<T, float>) {
    grad_range_f32(grad, grad_value, x, t, begin, end, s, gamma, grad_x, grad_t);
  } else {
    grad_range(grad, grad_value, x, t, begin, end, s, gamma, grad_x, grad_t);
  }
}

at::Tensor sigmoid_focal_loss_cpu(const at::Tensor& inputs, const at::Tensor& targets,
                                  double alpha, double gamma, c10::string_view reduction_name) {
  const char* op = "sigmoid_focal_loss";
  check_sigmoid_focal_inputs(inputs, targets, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  if (is_reduced_float(inputs)) {
    return sigmoid_focal_loss_cpu(inputs.to(at::kFloat), targets.to(at::kFloat), alpha, gamma,
                                  reduction_name)
        .to(inputs.scalar_type());
  }
  const at::Tensor x = inputs.contiguous(), t = targets.contiguous();
  const int64_t n = x.numel();
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sigmoid_focal_loss_cpu", [&] {
    using T = scalar_t;
    const auto s = SigmoidFocalSettings<T>::of(static_cast<T>(alpha));
    const T g = static_cast<T>(gamma);
    const T* xd = x.const_data_ptr<T>();
    const T* td = t.const_data_ptr<T>();
    if (reduction == Reduction::kNone) {
      result = at::empty(x.sizes(), x.options());
      T* out = result.mutable_data_ptr<T>();
      at::parallel_for(0, n, kChunk / 4, [&](int64_t begin, int64_t end) {
        run_loss_range(xd, td, begin, end, s, g, out);
      });
      return;
    }
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(chunks);
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        partial[c] = run_sum_range(xd, td, c * kChunk, std::min(n, (c + 1) * kChunk), s, g);
      }
    });
    double total = 0;
    for (const double v : partial) total += v;
    if (reduction == Reduction::kMean) total /= static_cast<double>(n);  // n = 0: NaN
    result = at::scalar_tensor(total, x.options());
  });
  return result;
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_backward_cpu(
    const at::Tensor& grad, const at::Tensor& inputs, const at::Tensor& targets, double alpha,
    double gamma, c10::string_view reduction_name, bool targets_grad) {
  const char* op = "sigmoid_focal_loss_backward";
  check_sigmoid_focal_inputs(inputs, targets, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  check_focal_grad(grad, reduction, inputs.sizes(), inputs, op);
  if (is_reduced_float(inputs)) {
    auto [grad_x, grad_t] = sigmoid_focal_loss_backward_cpu(
        grad.to(at::kFloat), inputs.to(at::kFloat), targets.to(at::kFloat), alpha, gamma,
        reduction_name, targets_grad);
    return {grad_x.to(inputs.scalar_type()), grad_t.to(inputs.scalar_type())};
  }
  const at::Tensor x = inputs.contiguous(), t = targets.contiguous(), g = grad.contiguous();
  const int64_t n = x.numel();
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_t = targets_grad ? at::empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  if (n == 0) return {grad_x, grad_t};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sigmoid_focal_loss_backward_cpu", [&] {
    using T = scalar_t;
    const auto s = SigmoidFocalSettings<T>::of(static_cast<T>(alpha));
    const T gm = static_cast<T>(gamma);
    const T* xd = x.const_data_ptr<T>();
    const T* td = t.const_data_ptr<T>();
    T* gx = grad_x.mutable_data_ptr<T>();
    T* gt = targets_grad ? grad_t.mutable_data_ptr<T>() : nullptr;
    if (reduction == Reduction::kNone) {
      const T* gd = g.const_data_ptr<T>();
      at::parallel_for(0, n, kChunk / 4, [&](int64_t begin, int64_t end) {
        run_grad_range(gd, T(0), xd, td, begin, end, s, gm, gx, gt);
      });
      return;
    }
    double value = static_cast<double>(g.reshape({}).item<T>());
    if (reduction == Reduction::kMean) value /= static_cast<double>(n);
    at::parallel_for(0, n, kChunk / 4, [&](int64_t begin, int64_t end) {
      run_grad_range(static_cast<const T*>(nullptr), static_cast<T>(value), xd, td, begin, end,
                     s, gm, gx, gt);
    });
  });
  return {grad_x, grad_t};
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CPU, m) {
  m.impl("sigmoid_focal_loss", TORCH_FN(sigmoid_focal_loss_cpu));
  m.impl("sigmoid_focal_loss_backward", TORCH_FN(sigmoid_focal_loss_backward_cpu));
}

}  // namespace pydetectron::ops::cpu
