// CUDA kernels of pydetectron::roi_align and roi_align_backward (float, double, half,
// bfloat16; accumulation in float for the half types). One thread per output element,
// which visits only the samples of its bin that lie inside the map (see
// roi_align_geometry.h); the backward scatters with atomic adds.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/native/cuda/KernelUtils.cuh>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/common/checks.h"
#include "ops/common/cuda_launch.cuh"
#include "ops/roi_align/roi_align_geometry.h"

namespace pydetectron::ops::cuda {
namespace {

struct AlignShape {
  int channels, height, width, pooled_h, pooled_w, batch_size;
  int64_t sampling_ratio;
  bool aligned;
};

// The samples of output bin (ph, pw) that lie inside the map, per axis.
template <typename A>
struct BinSamples {
  A base_y, base_x;
  int64_t y_first, y_last, x_first, x_last;
};

template <typename A>
__device__ inline BinSamples<A> bin_samples(const AlignGeometry<A>& g, int ph, int pw,
                                            const AlignShape& s) {
  BinSamples<A> b;
  b.base_y = bin_base(g.start_h, ph, g.bin_h);
  b.base_x = bin_base(g.start_w, pw, g.bin_w);
  samples_inside(b.base_y, g.bin_h, g.grid_h, s.height, b.y_first, b.y_last);
  samples_inside(b.base_x, g.bin_w, g.grid_w, s.width, b.x_first, b.x_last);
  return b;
}

template <typename T, typename A>
__device__ inline bool load_roi(const T* rois, int64_t n, int batch_size, A (&roi)[5], int& b) {
#pragma unroll
  for (int i = 0; i < 5; ++i) roi[i] = static_cast<A>(rois[n * 5 + i]);
  b = static_cast<int>(roi[0]);
  return b >= 0 && b < batch_size;  // out-of-range rois read nothing
}

template <typename T>
__global__ void roi_align_forward_kernel(int64_t total, const T* input, const T* rois,
                                         at::opmath_type<T> spatial_scale, AlignShape s,
                                         T* output) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(index, total) {
    const int pw = index % s.pooled_w;
    const int ph = (index / s.pooled_w) % s.pooled_h;
    const int c = (index / s.pooled_w / s.pooled_h) % s.channels;
    const int64_t n = index / s.pooled_w / s.pooled_h / s.channels;
    A roi[5];
    int b;
    if (!load_roi(rois, n, s.batch_size, roi, b)) {
      output[index] = static_cast<T>(0);
      continue;
    }
    const AlignGeometry<A> g =
        align_geometry(roi, spatial_scale, s.pooled_h, s.pooled_w, s.sampling_ratio, s.aligned);
    const BinSamples<A> bs = bin_samples(g, ph, pw, s);
    const T* plane = input + (static_cast<int64_t>(b) * s.channels + c) * s.height * s.width;
    A sum = 0;
    for (int64_t iy = bs.y_first; iy < bs.y_last; ++iy) {
      int y_lo, y_hi;
      A wy_lo, wy_hi;
      if (!axis_taps(sample_position(bs.base_y, g.bin_h, iy, g.grid_h), s.height, y_lo, y_hi,
                     wy_lo, wy_hi)) {
        continue;
      }
      const T* row_lo = plane + static_cast<int64_t>(y_lo) * s.width;
      const T* row_hi = plane + static_cast<int64_t>(y_hi) * s.width;
      for (int64_t ix = bs.x_first; ix < bs.x_last; ++ix) {
        int x_lo, x_hi;
        A wx_lo, wx_hi;
        if (!axis_taps(sample_position(bs.base_x, g.bin_w, ix, g.grid_w), s.width, x_lo, x_hi,
                       wx_lo, wx_hi)) {
          continue;
        }
        const A top = wx_lo * static_cast<A>(row_lo[x_lo]) + wx_hi * static_cast<A>(row_lo[x_hi]);
        const A bottom =
            wx_lo * static_cast<A>(row_hi[x_lo]) + wx_hi * static_cast<A>(row_hi[x_hi]);
        sum += wy_lo * top + wy_hi * bottom;
      }
    }
    output[index] = static_cast<T>(sum / g.count);
  }
}

template <typename T>
__global__ void roi_align_backward_kernel(int64_t total, const T* grad, const T* rois,
                                          at::opmath_type<T> spatial_scale, AlignShape s,
                                          T* grad_input, int64_t grad_input_numel) {
  using A = at::opmath_type<T>;
  PYDET_CUDA_LOOP(index, total) {
    const int pw = index % s.pooled_w;
    const int ph = (index / s.pooled_w) % s.pooled_h;
    const int c = (index / s.pooled_w / s.pooled_h) % s.channels;
    const int64_t n = index / s.pooled_w / s.pooled_h / s.channels;
    A roi[5];
    int b;
    if (!load_roi(rois, n, s.batch_size, roi, b)) continue;
    const AlignGeometry<A> g =
        align_geometry(roi, spatial_scale, s.pooled_h, s.pooled_w, s.sampling_ratio, s.aligned);
    const A g_bin = static_cast<A>(grad[index]) / g.count;
    const BinSamples<A> bs = bin_samples(g, ph, pw, s);
    const int64_t plane = (static_cast<int64_t>(b) * s.channels + c) * s.height * s.width;
    for (int64_t iy = bs.y_first; iy < bs.y_last; ++iy) {
      int y_lo, y_hi;
      A wy_lo, wy_hi;
      if (!axis_taps(sample_position(bs.base_y, g.bin_h, iy, g.grid_h), s.height, y_lo, y_hi,
                     wy_lo, wy_hi)) {
        continue;
      }
      for (int64_t ix = bs.x_first; ix < bs.x_last; ++ix) {
        int x_lo, x_hi;
        A wx_lo, wx_hi;
        if (!axis_taps(sample_position(bs.base_x, g.bin_w, ix, g.grid_w), s.width, x_lo, x_hi,
                       wx_lo, wx_hi)) {
          continue;
        }
        const int64_t lo = plane + static_cast<int64_t>(y_lo) * s.width;
        const int64_t hi = plane + static_cast<int64_t>(y_hi) * s.width;
        at::native::fastAtomicAdd(grad_input, lo + x_lo, grad_input_numel,
                                  static_cast<T>(g_bin * wy_lo * wx_lo), true);
        at::native::fastAtomicAdd(grad_input, lo + x_hi, grad_input_numel,
                                  static_cast<T>(g_bin * wy_lo * wx_hi), true);
        at::native::fastAtomicAdd(grad_input, hi + x_lo, grad_input_numel,
                                  static_cast<T>(g_bin * wy_hi * wx_lo), true);
        at::native::fastAtomicAdd(grad_input, hi + x_hi, grad_input_numel,
                                  static_cast<T>(g_bin * wy_hi * wx_hi), true);
      }
    }
  }
}

at::Tensor roi_align_forward_cuda(const at::Tensor& input, const at::Tensor& rois,
                                  double spatial_scale, int64_t pooled_height,
                                  int64_t pooled_width, int64_t sampling_ratio, bool aligned) {
  check_roi_op_inputs(input, rois, "roi_align");
  check_output_size(pooled_height, pooled_width, "roi_align");
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t num_rois = rois.size(0);
  at::Tensor output =
      at::empty({num_rois, input.size(1), pooled_height, pooled_width}, input.options());
  if (output.numel() == 0) return output;
  if (input.size(2) == 0 || input.size(3) == 0) return output.zero_();

  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const AlignShape s{static_cast<int>(input.size(1)), static_cast<int>(input.size(2)),
                     static_cast<int>(input.size(3)), static_cast<int>(pooled_height),
                     static_cast<int>(pooled_width), static_cast<int>(input.size(0)),
                     sampling_ratio, aligned};
  const int64_t total = output.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(),
                                  "roi_align_forward_cuda", [&] {
    roi_align_forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, input_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
        static_cast<at::opmath_type<scalar_t>>(spatial_scale), s,
        output.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor roi_align_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                   double spatial_scale, int64_t pooled_height,
                                   int64_t pooled_width, int64_t batch_size, int64_t channels,
                                   int64_t height, int64_t width, int64_t sampling_ratio,
                                   bool aligned) {
  check_roi_grad(grad, rois, channels, pooled_height, pooled_width, "roi_align_backward");
  c10::cuda::CUDAGuard guard(grad.device());
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;
  at::globalContext().alertNotDeterministic("pydetectron::roi_align_backward (CUDA)");

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const AlignShape s{static_cast<int>(channels), static_cast<int>(height),
                     static_cast<int>(width), static_cast<int>(pooled_height),
                     static_cast<int>(pooled_width), static_cast<int>(batch_size),
                     sampling_ratio, aligned};
  const int64_t total = grad.numel();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(),
                                  "roi_align_backward_cuda", [&] {
    roi_align_backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, grad_c.const_data_ptr<scalar_t>(), rois_c.const_data_ptr<scalar_t>(),
        static_cast<at::opmath_type<scalar_t>>(spatial_scale), s,
        grad_input.mutable_data_ptr<scalar_t>(), grad_input.numel());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CUDA, m) {
  m.impl("roi_align", TORCH_FN(roi_align_forward_cuda));
  m.impl("roi_align_backward", TORCH_FN(roi_align_backward_cuda));
}

}  // namespace pydetectron::ops::cuda
