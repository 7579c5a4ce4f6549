// CUDA kernels of pydetectron::roi_crop and roi_crop_backward (float, double, half,
// bfloat16). One thread per output element; the backward scatters with atomic adds.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/native/cuda/KernelUtils.cuh>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/common/checks.h"
#include "ops/common/cuda_launch.cuh"
#include "ops/roi_crop/roi_crop_geometry.h"

namespace pydetectron::ops::cuda {
namespace {

struct CropShape {
  int channels, height, width, out_h, out_w, batch_size;
};

// Taps of output pixel (ph, pw) of RoI n; false when the batch index is out of range.
template <typename T, typename A>
__device__ inline bool crop_pixel_taps(const T* rois, int64_t n, A spatial_scale,
                                       const CropShape& s, int ph, int pw, int& b, int (&y)[2],
                                       A (&wy)[2], int (&x)[2], A (&wx)[2]) {
  const T* roi = rois + n * 5;
  b = static_cast<int>(static_cast<A>(roi[0]));
  if (b < 0 || b >= s.batch_size) return false;
  const A yy = crop_position(static_cast<A>(roi[2]) * spatial_scale,
                             static_cast<A>(roi[4]) * spatial_scale, ph, s.out_h);
  const A xx = crop_position(static_cast<A>(roi[1]) * spatial_scale,
                             static_cast<A>(roi[3]) * spatial_scale, pw, s.out_w);
  crop_taps(yy, s.height, y[0], y[1], wy[0], wy[1]);
  crop_taps(xx, s.width, x[0], x[1], wx[0], wx[1]);
  return true;
}

template <typename T>
__global__ void roi_crop_forward_kernel(int64_t total, const T* input, const T* rois,
                                        at::opmath_type<T> spatial_scale, CropShape s,
                                        T* output) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(index, total) {
    const int pw = index % s.out_w;
    const int ph = (index / s.out_w) % s.out_h;
    const int c = (index / s.out_w / s.out_h) % s.channels;
    const int64_t n = index / s.out_w / s.out_h / s.channels;
    int b, y[2], x[2];
    A wy[2], wx[2];
    if (!crop_pixel_taps(rois, n, spatial_scale, s, ph, pw, b, y, wy, x, wx)) {
      output[index] = static_cast<T>(0);
      continue;
    }
    const T* plane = input + (static_cast<int64_t>(b) * s.channels + c) * s.height * s.width;
    A sum = 0;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const T* row = plane + static_cast<int64_t>(y[i]) * s.width;
      sum += wy[i] * (wx[0] * static_cast<A>(row[x[0]]) + wx[1] * static_cast<A>(row[x[1]]));
    }
    output[index] = static_cast<T>(sum);
  }
}

template <typename T>
__global__ void roi_crop_backward_kernel(int64_t total, const T* grad, const T* rois,
                                         at::opmath_type<T> spatial_scale, CropShape s,
                                         T* grad_input, int64_t grad_input_numel) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(index, total) {
    const int pw = index % s.out_w;
    const int ph = (index / s.out_w) % s.out_h;
    const int c = (index / s.out_w / s.out_h) % s.channels;
    const int64_t n = index / s.out_w / s.out_h / s.channels;
    int b, y[2], x[2];
    A wy[2], wx[2];
    if (!crop_pixel_taps(rois, n, spatial_scale, s, ph, pw, b, y, wy, x, wx)) continue;
    const A g = static_cast<A>(grad[index]);
    const int64_t plane = (static_cast<int64_t>(b) * s.channels + c) * s.height * s.width;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const A w = wy[i] * wx[j];
        if (w != A(0)) {
          at::native::fastAtomicAdd(grad_input,
                                    plane + static_cast<int64_t>(y[i]) * s.width + x[j],
                                    grad_input_numel, static_cast<T>(g * w), true);
        }
      }
    }
  }
}

at::Tensor roi_crop_forward_cuda(const at::Tensor& input, const at::Tensor& rois,
                                 double spatial_scale, int64_t output_height,
                                 int64_t output_width) {
  check_roi_op_inputs(input, rois, "roi_crop");
  check_output_size(output_height, output_width, "roi_crop");
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t num_rois = rois.size(0);
  at::Tensor output =
      at::empty({num_rois, input.size(1), output_height, output_width}, input.options());
  if (output.numel() == 0) return output;
  if (input.size(2) == 0 || input.size(3) == 0) return output.zero_();

  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const CropShape s{static_cast<int>(input.size(1)), static_cast<int>(input.size(2)),
                    static_cast<int>(input.size(3)), static_cast<int>(output_height),
                    static_cast<int>(output_width), static_cast<int>(input.size(0))};
  const int64_t total = output.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "roi_crop_forward_cuda", [&] {
    roi_crop_forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, input_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
        static_cast<at::opmath_type<scalar_t>>(spatial_scale), s,
        output.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor roi_crop_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                  double spatial_scale, int64_t output_height,
                                  int64_t output_width, int64_t batch_size, int64_t channels,
                                  int64_t height, int64_t width) {
  check_roi_grad(grad, rois, channels, output_height, output_width, "roi_crop_backward");
  c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;
  at::globalContext().alertNotDeterministic("pydetectron::roi_crop_backward (CUDA)");

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const CropShape s{static_cast<int>(channels), static_cast<int>(height),
                    static_cast<int>(width), static_cast<int>(output_height),
                    static_cast<int>(output_width), static_cast<int>(batch_size)};
  const int64_t total = grad.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
                                  "roi_crop_backward_cuda", [&] {
    roi_crop_backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, grad_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
        static_cast<at::opmath_type<scalar_t>>(spatial_scale), s,
        grad_input.mutable_data_ptr<scalar_t>(), grad_input.numel());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CUDA, m) {
  m.impl("roi_crop", TORCH_FN(roi_crop_forward_cuda));
  m.impl("roi_crop_backward", TORCH_FN(roi_crop_backward_cuda));
}

}  // namespace pydetectron::ops::cuda
