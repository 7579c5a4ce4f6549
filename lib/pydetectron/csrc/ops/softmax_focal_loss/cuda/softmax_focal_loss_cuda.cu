// CUDA kernels of pydetectron::softmax_focal_loss and its backward (float, double, half,
// bfloat16; half types compute in float). One warp per row: the lanes stride over the
// classes, warp shuffles combine the row's largest logit and its sum of exponentials,
// and the terms of softmax_focal_loss_math.h give the loss or the gradient row.
//
// The labels are checked on the host before the forward runs (one synchronisation), so
// a label outside [-1, C) raises a ValueError instead of a device-side assert. 'mean'
// divides by the number of rows that are not ignored, counted on the device.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "ops/common/cuda_launch.cuh"
#include "ops/common/focal_checks.h"
#include "ops/softmax_focal_loss/softmax_focal_loss_math.h"

namespace pydetectron::ops::cuda {
namespace {

constexpr int kWarp = 32;

template <typename A>
__device__ inline A warp_max(A v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const A other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = other > v ? other : v;
  }
  return v;
}

template <typename A>
__device__ inline A warp_sum(A v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The focal terms of one row, computed by the whole warp (every lane gets them) and the
// row's largest logit.
template <typename T, typename A, typename P>
__device__ inline SoftmaxFocalTerms<A> row_terms(const T* row, int64_t classes, int64_t label,
                                                 A alpha, const P& power, int lane, A& largest) {
  A mx = -std::numeric_limits<A>::infinity();
  for (int64_t j = lane; j < classes; j += kWarp) {
    const A v = static_cast<A>(row[j]);
    mx = v > mx ? v : mx;
  }
  mx = warp_max(mx);
  A others = 0;
  for (int64_t j = lane; j < classes; j += kWarp) {
    if (j != label) others += precise_exp(static_cast<A>(row[j]) - mx);
  }
  others = warp_sum(others);
  largest = mx;
  const A label_logit = static_cast<A>(row[label]);
  return softmax_focal_terms<PreciseMath>(label_logit, mx, precise_exp(label_logit - mx), others,
                                          softmax_focal_weight(label, alpha), power);
}

// P: the power policy of gamma (focal_math.h).
template <typename T, typename Out, typename P>
__global__ void softmax_focal_loss_kernel(int64_t rows, int64_t classes, const T* logits,
                                          const int64_t* labels, at::opmath_type<T> alpha,
                                          P power, Out* loss) {
  using A = at::opmath_type<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
       i < rows; i += warps) {
    const int64_t label = labels[i];
    if (label < 0 || label >= classes) {  // ignored (the host checked the range)
      if (lane == 0) loss[i] = static_cast<Out>(0);
      continue;
    }
    A largest;
    const SoftmaxFocalTerms<A> terms =
        row_terms(logits + i * classes, classes, label, alpha, power, lane, largest);
    if (lane == 0) loss[i] = static_cast<Out>(terms.loss);
  }
}

// `grad` holds one gradient per row, or one value for all (`scalar_grad`, already
// divided for 'mean', in the compute type).
template <typename T, typename P>
__global__ void softmax_focal_loss_backward_kernel(int64_t rows, int64_t classes, const T* grad,
                                                   const at::opmath_type<T>* scalar_grad,
                                                   const T* logits, const int64_t* labels,
                                                   at::opmath_type<T> alpha, P power,
                                                   T* grad_logits) {
  using A = at::opmath_type<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
       i < rows; i += warps) {
    const int64_t label = labels[i];
    T* out = grad_logits + i * classes;
    if (label < 0 || label >= classes) {
      for (int64_t j = lane; j < classes; j += kWarp) out[j] = static_cast<T>(0);
      continue;
    }
    const T* row = logits + i * classes;
    A largest;
    const SoftmaxFocalTerms<A> terms = row_terms(row, classes, label, alpha, power, lane, largest);
    const A g = scalar_grad != nullptr ? scalar_grad[0] : static_cast<A>(grad[i]);
    for (int64_t j = lane; j < classes; j += kWarp) {
      const A value = j == label ? g * terms.grad_label
                                 : -g * terms.other_scale *
                                       precise_exp(static_cast<A>(row[j]) - largest);
      out[j] = static_cast<T>(value);
    }
  }
}

unsigned int row_blocks(int64_t rows) {
  return blocks_for(rows * kWarp);
}

// Raises a ValueError naming the first label outside [-1, classes) (one synchronisation).
void check_labels_cuda(const at::Tensor& labels, int64_t classes, const char* op) {
  if (labels.numel() == 0) return;
  const at::Tensor bad = labels.lt(-1).logical_or_(labels.ge(classes));
  if (!bad.any().item<bool>()) return;
  const int64_t first = bad.nonzero().select(1, 0).min().item<int64_t>();
  TORCH_CHECK_VALUE(false, op, ": labels[", first, "] = ", labels[first].item<int64_t>(),
                    " is neither a class in [0, ", classes, ") nor -1 (ignored)");
}

at::Tensor softmax_focal_loss_cuda(const at::Tensor& logits, const at::Tensor& labels,
                                   double alpha, double gamma, c10::string_view reduction_name) {
  const char* op = "softmax_focal_loss";
  check_softmax_focal_inputs(logits, labels, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  c10::cuda::CUDAGuard guard(logits.device());
  const at::Tensor l = logits.contiguous(), y = labels.contiguous();
  const int64_t rows = l.size(0), classes = l.size(1);
  check_labels_cuda(y, classes, op);
  const auto compute_type = at::toOpMathType(l.scalar_type());
  at::Tensor loss = at::empty(
      {rows}, reduction == Reduction::kNone ? l.options() : l.options().dtype(compute_type));
  if (rows > 0) {
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.scalar_type(),
                                    "softmax_focal_loss_cuda", [&] {
      using A = at::opmath_type<scalar_t>;
      with_focal_power<PreciseMath>(static_cast<A>(gamma), [&](auto power) {
        using P = decltype(power);
        if (reduction == Reduction::kNone) {
          softmax_focal_loss_kernel<scalar_t, scalar_t, P>
              <<<row_blocks(rows), kThreads, 0, stream>>>(
                  rows, classes, l.const_data_ptr<scalar_t>(), y.const_data_ptr<int64_t>(),
                  static_cast<A>(alpha), power, loss.mutable_data_ptr<scalar_t>());
        } else {
          softmax_focal_loss_kernel<scalar_t, A, P><<<row_blocks(rows), kThreads, 0, stream>>>(
              rows, classes, l.const_data_ptr<scalar_t>(), y.const_data_ptr<int64_t>(),
              static_cast<A>(alpha), power, loss.mutable_data_ptr<A>());
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  if (reduction == Reduction::kNone) return loss;
  at::Tensor total = loss.sum();
  if (reduction == Reduction::kMean) total = total / y.ge(0).sum().to(compute_type);  // 0: NaN
  return total.to(l.scalar_type());
}

at::Tensor softmax_focal_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& logits,
                                            const at::Tensor& labels, double alpha, double gamma,
                                            c10::string_view reduction_name) {
  const char* op = "softmax_focal_loss_backward";
  check_softmax_focal_inputs(logits, labels, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  check_focal_grad(grad, reduction, {logits.size(0)}, logits, op);
  c10::cuda::CUDAGuard guard(logits.device());
  const at::Tensor l = logits.contiguous(), y = labels.contiguous();
  const int64_t rows = l.size(0), classes = l.size(1);
  at::Tensor grad_logits = at::empty({rows, classes}, l.options());
  if (grad_logits.numel() == 0) return grad_logits;
  const auto compute_type = at::toOpMathType(l.scalar_type());
  at::Tensor grad_c, scalar;
  if (reduction == Reduction::kNone) {
    grad_c = grad.contiguous();
  } else {
    scalar = grad.reshape({1}).to(compute_type);
    if (reduction == Reduction::kMean) scalar = scalar / y.ge(0).sum().to(compute_type);
  }
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.scalar_type(),
                                  "softmax_focal_loss_backward_cuda", [&] {
    using A = at::opmath_type<scalar_t>;
    with_focal_power<PreciseMath>(static_cast<A>(gamma), [&](auto power) {
      softmax_focal_loss_backward_kernel<scalar_t, decltype(power)>
          <<<row_blocks(rows), kThreads, 0, stream>>>(
              rows, classes, grad_c.defined() ? grad_c.const_data_ptr<scalar_t>() : nullptr,
              scalar.defined() ? scalar.const_data_ptr<A>() : nullptr,
              l.const_data_ptr<scalar_t>(), y.const_data_ptr<int64_t>(), static_cast<A>(alpha),
              power, grad_logits.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CUDA, m) {
  m.impl("softmax_focal_loss", TORCH_FN(softmax_focal_loss_cuda));
  m.impl("softmax_focal_loss_backward", TORCH_FN(softmax_focal_loss_backward_cuda));
}

}  // namespace pydetectron::ops::cuda
