// CUDA kernels of pydetectron::roi_pool and roi_pool_backward (float, double, half,
// bfloat16). One thread per output element; the backward adds each gradient to its
// argmax pixel with an atomic add.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/native/cuda/KernelUtils.cuh>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/common/checks.h"
#include "ops/common/cuda_launch.cuh"
#include "ops/roi_pool/roi_pool_geometry.h"

namespace pydetectron::ops::cuda {
namespace {

struct PoolShape {
  int channels, height, width, pooled_h, pooled_w, batch_size;
};

template <typename T>
__global__ void roi_pool_forward_kernel(int64_t total, const T* input, const T* rois,
                                        at::opmath_type<T> spatial_scale, PoolShape s, T* output,
                                        int32_t* argmax) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(index, total) {
    const int pw = index % s.pooled_w;
    const int ph = (index / s.pooled_w) % s.pooled_h;
    const int c = (index / s.pooled_w / s.pooled_h) % s.channels;
    const int64_t n = index / s.pooled_w / s.pooled_h / s.channels;
    A roi[5];
#pragma unroll
    for (int i = 0; i < 5; ++i) roi[i] = static_cast<A>(rois[n * 5 + i]);
    const int b = static_cast<int>(roi[0]);
    output[index] = static_cast<T>(0);
    argmax[index] = -1;
    if (b < 0 || b >= s.batch_size) continue;
    const PoolRoi r = pool_roi(roi, spatial_scale);
    int h0, h1, w0, w1;
    pool_bin<A>(ph, r.height, s.pooled_h, r.start_h, s.height, h0, h1);
    pool_bin<A>(pw, r.width, s.pooled_w, r.start_w, s.width, w0, w1);
    if (h1 <= h0 || w1 <= w0) continue;
    const T* plane = input + (static_cast<int64_t>(b) * s.channels + c) * s.height * s.width;
    int best = h0 * s.width + w0;
    A best_value = static_cast<A>(plane[best]);
    for (int h = h0; h < h1; ++h) {
      for (int w = w0; w < w1; ++w) {
        const A v = static_cast<A>(plane[h * s.width + w]);
        if (v > best_value) {
          best_value = v;
          best = h * s.width + w;
        }
      }
    }
    output[index] = static_cast<T>(best_value);
    argmax[index] = best;
  }
}

template <typename T>
__global__ void roi_pool_backward_kernel(int64_t total, const T* grad, const int32_t* argmax,
                                         const T* rois, PoolShape s, T* grad_input,
                                         int64_t grad_input_numel) {
  PYDET_CUDA_LOOP(index, total) {
    const int a = argmax[index];
    if (a < 0 || a >= s.height * s.width) continue;
    const int c = (index / s.pooled_w / s.pooled_h) % s.channels;
    const int64_t n = index / s.pooled_w / s.pooled_h / s.channels;
    const int b = static_cast<int>(static_cast<at::opmath_type<T>>(rois[n * 5]));
    if (b < 0 || b >= s.batch_size) continue;
    const int64_t plane = (static_cast<int64_t>(b) * s.channels + c) * s.height * s.width;
    at::native::fastAtomicAdd(grad_input, plane + a, grad_input_numel, grad[index], true);
  }
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cuda(const at::Tensor& input,
                                                         const at::Tensor& rois,
                                                         double spatial_scale,
                                                         int64_t pooled_height,
                                                         int64_t pooled_width) {
  check_roi_op_inputs(input, rois, "roi_pool");
  check_output_size(pooled_height, pooled_width, "roi_pool");
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t num_rois = rois.size(0);
  at::Tensor output =
      at::zeros({num_rois, input.size(1), pooled_height, pooled_width}, input.options());
  at::Tensor argmax = at::full({num_rois, input.size(1), pooled_height, pooled_width}, -1,
                               input.options().dtype(at::kInt));
  if (output.numel() == 0 || input.size(2) == 0 || input.size(3) == 0) return {output, argmax};

  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const PoolShape s{static_cast<int>(input.size(1)), static_cast<int>(input.size(2)),
                    static_cast<int>(input.size(3)), static_cast<int>(pooled_height),
                    static_cast<int>(pooled_width), static_cast<int>(input.size(0))};
  const int64_t total = output.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "roi_pool_forward_cuda", [&] {
    roi_pool_forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, input_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
        static_cast<at::opmath_type<scalar_t>>(spatial_scale), s,
        output.mutable_data_ptr<scalar_t>(), argmax.mutable_data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {output, argmax};
}

at::Tensor roi_pool_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                  const at::Tensor& argmax, double /*spatial_scale*/,
                                  int64_t pooled_height, int64_t pooled_width, int64_t batch_size,
                                  int64_t channels, int64_t height, int64_t width) {
  check_roi_grad(grad, rois, channels, pooled_height, pooled_width, "roi_pool_backward");
  TORCH_CHECK_VALUE(argmax.sizes() == grad.sizes(), "roi_pool_backward: argmax must have shape ",
                    grad.sizes(), ", got ", argmax.sizes());
  TORCH_CHECK_TYPE(argmax.scalar_type() == at::kInt,
                   "roi_pool_backward: argmax must be int32, got ", argmax.scalar_type());
  c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;
  at::globalContext().alertNotDeterministic("pydetectron::roi_pool_backward (CUDA)");

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor argmax_c = argmax.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const PoolShape s{static_cast<int>(channels), static_cast<int>(height),
                    static_cast<int>(width), static_cast<int>(pooled_height),
                    static_cast<int>(pooled_width), static_cast<int>(batch_size)};
  const int64_t total = grad.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
                                  "roi_pool_backward_cuda", [&] {
    roi_pool_backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, grad_c.const_data_ptr<scalar_t>(), argmax_c.const_data_ptr<int32_t>(),
        rois_c.const_data_ptr<scalar_t>(), s, grad_input.mutable_data_ptr<scalar_t>(),
        grad_input.numel());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CUDA, m) {
  m.impl("roi_pool", TORCH_FN(roi_pool_forward_cuda));
  m.impl("roi_pool_backward", TORCH_FN(roi_pool_backward_cuda));
}

}  // namespace pydetectron::ops::cuda
