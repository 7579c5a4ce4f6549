// CUDA kernels of pydetectron::sigmoid_focal_loss and its backward (float, double, half,
// bfloat16; half types compute in float). One thread per element with the formulas of
// sigmoid_focal_loss_math.h. The reductions write each element's loss in the compute
// type and sum it with at::sum (deterministic); the backward of a reduced loss reads the
// one incoming gradient (scaled for 'mean') from device memory, so nothing waits for
// the host.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/common/cuda_launch.cuh"
#include "ops/common/focal_checks.h"
#include "ops/sigmoid_focal_loss/sigmoid_focal_loss_math.h"

namespace pydetectron::ops::cuda {
namespace {

// P: the power policy of gamma (focal_math.h).
template <typename T, typename Out, typename P>
__global__ void sigmoid_focal_loss_kernel(int64_t n, const T* inputs, const T* targets,
                                          SigmoidFocalSettings<at::opmath_type<T>> s, P power,
                                          Out* loss) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(i, n) {
    loss[i] = static_cast<Out>(sigmoid_focal_loss_value<PreciseMath>(
        static_cast<A>(inputs[i]), static_cast<A>(targets[i]), s, power));
  }
}

// `grad` holds one gradient per element, or one value for all (`scalar_grad`, already
// scaled for 'mean', in the compute type).
template <typename T, typename P>
__global__ void sigmoid_focal_loss_backward_kernel(
    int64_t n, const T* grad, const at::opmath_type<T>* scalar_grad, const T* inputs,
    const T* targets, SigmoidFocalSettings<at::opmath_type<T>> s, P power, T* grad_inputs,
    T* grad_targets) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(i, n) {
    const A g = scalar_grad != nullptr ? scalar_grad[0] : static_cast<A>(grad[i]);
    const A x = static_cast<A>(inputs[i]), t = static_cast<A>(targets[i]);
    grad_inputs[i] = static_cast<T>(g * sigmoid_focal_grad_input<PreciseMath>(x, t, s, power));
    if (grad_targets != nullptr) {
      grad_targets[i] =
          static_cast<T>(g * sigmoid_focal_grad_target<PreciseMath>(x, t, s, power));
    }
  }
}

at::Tensor sigmoid_focal_loss_cuda(const at::Tensor& inputs, const at::Tensor& targets,
                                   double alpha, double gamma, c10::string_view reduction_name) {
  const char* op = "sigmoid_focal_loss";
  check_sigmoid_focal_inputs(inputs, targets, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  c10::cuda::CUDAGuard guard(inputs.device());
  const at::Tensor x = inputs.contiguous(), t = targets.contiguous();
  const int64_t n = x.numel();
  const auto compute_type = at::toOpMathType(x.scalar_type());
  at::Tensor loss = reduction == Reduction::kNone
                        ? at::empty(x.sizes(), x.options())
                        : at::empty({n}, x.options().dtype(compute_type));
  if (n > 0) {
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                    "sigmoid_focal_loss_cuda", [&] {
      using A = at::opmath_type<scalar_t>;
      const auto s = SigmoidFocalSettings<A>::of(static_cast<A>(alpha));
      with_focal_power<PreciseMath>(static_cast<A>(gamma), [&](auto power) {
        using P = decltype(power);
        if (reduction == Reduction::kNone) {
          sigmoid_focal_loss_kernel<scalar_t, scalar_t, P><<<blocks_for(n), kThreads, 0, stream>>>(
              n, x.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), s, power,
              loss.mutable_data_ptr<scalar_t>());
        } else {
          sigmoid_focal_loss_kernel<scalar_t, A, P><<<blocks_for(n), kThreads, 0, stream>>>(
              n, x.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), s, power,
              loss.mutable_data_ptr<A>());
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  if (reduction == Reduction::kNone) return loss;
  at::Tensor total = loss.sum();
  if (reduction == Reduction::kMean) total = total / static_cast<double>(n);  // n = 0: NaN
  return total.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> sigmoid_focal_loss_backward_cuda(
    const at::Tensor& grad, const at::Tensor& inputs, const at::Tensor& targets, double alpha,
    double gamma, c10::string_view reduction_name, bool targets_grad) {
  const char* op = "sigmoid_focal_loss_backward";
  check_sigmoid_focal_inputs(inputs, targets, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  check_focal_grad(grad, reduction, inputs.sizes(), inputs, op);
  c10::cuda::CUDAGuard guard(inputs.device());
  const at::Tensor x = inputs.contiguous(), t = targets.contiguous();
  const int64_t n = x.numel();
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_t = targets_grad ? at::empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  if (n == 0) return {grad_x, grad_t};
  const auto compute_type = at::toOpMathType(x.scalar_type());
  at::Tensor grad_c, scalar;
  if (reduction == Reduction::kNone) {
    grad_c = grad.contiguous();
  } else {
    scalar = grad.reshape({1}).to(compute_type);
    if (reduction == Reduction::kMean) scalar = scalar / static_cast<double>(n);
  }
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "sigmoid_focal_loss_backward_cuda", [&] {
    using A = at::opmath_type<scalar_t>;
    const auto s = SigmoidFocalSettings<A>::of(static_cast<A>(alpha));
    with_focal_power<PreciseMath>(static_cast<A>(gamma), [&](auto power) {
      sigmoid_focal_loss_backward_kernel<scalar_t, decltype(power)>
          <<<blocks_for(n), kThreads, 0, stream>>>(
              n, grad_c.defined() ? grad_c.const_data_ptr<scalar_t>() : nullptr,
              scalar.defined() ? scalar.const_data_ptr<A>() : nullptr,
              x.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), s, power,
              grad_x.mutable_data_ptr<scalar_t>(),
              targets_grad ? grad_t.mutable_data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {grad_x, grad_t};
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CUDA, m) {
  m.impl("sigmoid_focal_loss", TORCH_FN(sigmoid_focal_loss_cuda));
  m.impl("sigmoid_focal_loss_backward", TORCH_FN(sigmoid_focal_loss_backward_cuda));
}

}  // namespace pydetectron::ops::cuda
