// CPU kernels of pydetectron::roi_crop and roi_crop_backward.
//
// Each RoI's taps (two rows and two columns per output pixel) are computed once and
// shared by all channels. Both directions run in parallel over (image, channel block)
// items with the RoIs of that image inside: the planes stay in cache, and in the
// backward each grad_input plane has a single writer (no atomics). float16 and bfloat16
// compute in float32.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/common/checks.h"
#include "ops/common/layout.h"
#include "ops/common/parallel.h"
#include "ops/common/reduced_float.h"
#include "ops/common/roi_batches.h"
#include "ops/roi_crop/roi_crop_geometry.h"

namespace pydetectron::ops::cpu {
namespace {

template <typename T>
struct CropTaps {
  std::vector<int> y_lo, y_hi, x_lo, x_hi;
  std::vector<T> wy_lo, wy_hi, wx_lo, wx_hi;
};

template <typename T>
std::vector<CropTaps<T>> build_crop_taps(const T* rois, int64_t num_rois, T spatial_scale,
                                         int out_h, int out_w, int height, int width) {
  std::vector<CropTaps<T>> all(num_rois);
  at::parallel_for(0, num_rois, 64, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const T* roi = rois + n * 5;
      CropTaps<T>& t = all[n];
      t.y_lo.resize(out_h), t.y_hi.resize(out_h), t.wy_lo.resize(out_h), t.wy_hi.resize(out_h);
      t.x_lo.resize(out_w), t.x_hi.resize(out_w), t.wx_lo.resize(out_w), t.wx_hi.resize(out_w);
      for (int p = 0; p < out_h; ++p) {
        const T y = crop_position(roi[2] * spatial_scale, roi[4] * spatial_scale, p, out_h);
        crop_taps(y, height, t.y_lo[p], t.y_hi[p], t.wy_lo[p], t.wy_hi[p]);
      }
      for (int p = 0; p < out_w; ++p) {
        const T x = crop_position(roi[1] * spatial_scale, roi[3] * spatial_scale, p, out_w);
        crop_taps(x, width, t.x_lo[p], t.x_hi[p], t.wx_lo[p], t.wx_hi[p]);
      }
    }
  });
  return all;
}

template <typename T>
void crop_plane(const CropTaps<T>& t, const T* plane, int64_t width, int out_h, int out_w,
                T* out) {
  for (int ph = 0; ph < out_h; ++ph) {
    const T* row_lo = plane + t.y_lo[ph] * width;
    const T* row_hi = plane + t.y_hi[ph] * width;
    const T wy_lo = t.wy_lo[ph], wy_hi = t.wy_hi[ph];
    for (int pw = 0; pw < out_w; ++pw) {
      const int x_lo = t.x_lo[pw], x_hi = t.x_hi[pw];
      const T top = t.wx_lo[pw] * row_lo[x_lo] + t.wx_hi[pw] * row_lo[x_hi];
      const T bottom = t.wx_lo[pw] * row_hi[x_lo] + t.wx_hi[pw] * row_hi[x_hi];
      out[ph * out_w + pw] = wy_lo * top + wy_hi * bottom;
    }
  }
}

template <typename T>
void crop_plane_backward(const CropTaps<T>& t, const T* grad, int64_t width, int out_h,
                         int out_w, T* plane) {
  for (int ph = 0; ph < out_h; ++ph) {
    T* row_lo = plane + t.y_lo[ph] * width;
    T* row_hi = plane + t.y_hi[ph] * width;
    const T wy_lo = t.wy_lo[ph], wy_hi = t.wy_hi[ph];
    for (int pw = 0; pw < out_w; ++pw) {
      const T g = grad[ph * out_w + pw];
      const T g_lo = wy_lo * g, g_hi = wy_hi * g;
      const int x_lo = t.x_lo[pw], x_hi = t.x_hi[pw];
      row_lo[x_lo] += t.wx_lo[pw] * g_lo;
      row_lo[x_hi] += t.wx_hi[pw] * g_lo;
      row_hi[x_lo] += t.wx_lo[pw] * g_hi;
      row_hi[x_hi] += t.wx_hi[pw] * g_hi;
    }
  }
}

at::Tensor roi_crop_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                double spatial_scale, int64_t output_height,
                                int64_t output_width) {
  check_roi_op_inputs(input, rois, "roi_crop");
  check_output_size(output_height, output_width, "roi_crop");
  if (is_reduced_float(input)) {
    return roi_crop_forward_cpu(input.to(at::kFloat), rois.to(at::kFloat), spatial_scale,
                                output_height, output_width)
        .to(input.scalar_type());
  }
  const int64_t num_rois = rois.size(0);
  const int64_t batch = input.size(0), channels = input.size(1);
  const int64_t height = input.size(2), width = input.size(3);
  at::Tensor output = at::zeros({num_rois, channels, output_height, output_width}, input.options());
  if (output.numel() == 0 || height == 0 || width == 0) return output;

  const at::Tensor input_c = input.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_crop_forward_cpu", [&] {
    using T = scalar_t;
    const T* roi_data = rois_c.const_data_ptr<T>();
    check_batch_indices_cpu(roi_data, num_rois, batch, "roi_crop");
    const auto taps = build_crop_taps(roi_data, num_rois, static_cast<T>(spatial_scale),
                                      static_cast<int>(output_height),
                                      static_cast<int>(output_width), static_cast<int>(height),
                                      static_cast<int>(width));
    const auto groups = rois_by_batch(roi_data, num_rois, batch);
    const T* in = input_c.const_data_ptr<T>();
    T* out = output.mutable_data_ptr<T>();
    const int64_t plane = height * width, bins = output_height * output_width;
    // Items are (image, channel block): the planes stay in cache for all their RoIs.
    const int64_t block = plane_channel_block(plane * sizeof(T), channels, batch);
    const int64_t blocks = (channels + block - 1) / block;
    parallel_dynamic(batch * blocks, num_rois * channels * bins * 4, [&](int64_t item) {
      const int64_t b = item / blocks, c_begin = (item % blocks) * block;
      const int64_t c_end = std::min(channels, c_begin + block);
      for (const int64_t n : groups[b]) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          crop_plane(taps[n], in + (b * channels + c) * plane, width,
                     static_cast<int>(output_height), static_cast<int>(output_width),
                     out + (n * channels + c) * bins);
        }
      }
    });
  });
  return output;
}

at::Tensor roi_crop_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                 double spatial_scale, int64_t output_height, int64_t output_width,
                                 int64_t batch_size, int64_t channels, int64_t height,
                                 int64_t width) {
  check_roi_grad(grad, rois, channels, output_height, output_width, "roi_crop_backward");
  if (is_reduced_float(grad)) {
    return roi_crop_backward_cpu(grad.to(at::kFloat), rois.to(at::kFloat), spatial_scale,
                                 output_height, output_width, batch_size, channels, height, width)
        .to(grad.scalar_type());
  }
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const int64_t num_rois = rois.size(0);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_crop_backward_cpu", [&] {
    using T = scalar_t;
    const T* roi_data = rois_c.const_data_ptr<T>();
    check_batch_indices_cpu(roi_data, num_rois, batch_size, "roi_crop_backward");
    const auto taps = build_crop_taps(roi_data, num_rois, static_cast<T>(spatial_scale),
                                      static_cast<int>(output_height),
                                      static_cast<int>(output_width), static_cast<int>(height),
                                      static_cast<int>(width));
    const auto groups = rois_by_batch(roi_data, num_rois, batch_size);
    const T* g = grad_c.const_data_ptr<T>();
    T* gi = grad_input.mutable_data_ptr<T>();
    const int64_t plane = height * width, bins = output_height * output_width;
    // Items are (image, channel block): each grad_input plane has a single writer.
    const int64_t block = plane_channel_block(plane * sizeof(T), channels, batch_size);
    const int64_t blocks = (channels + block - 1) / block;
    parallel_dynamic(batch_size * blocks, num_rois * channels * bins * 4, [&](int64_t item) {
      const int64_t b = item / blocks, c_begin = (item % blocks) * block;
      const int64_t c_end = std::min(channels, c_begin + block);
      for (const int64_t n : groups[b]) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          crop_plane_backward(taps[n], g + (n * channels + c) * bins, width,
                              static_cast<int>(output_height), static_cast<int>(output_width),
                              gi + (b * channels + c) * plane);
        }
      }
    });
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CPU, m) {
  m.impl("roi_crop", TORCH_FN(roi_crop_forward_cpu));
  m.impl("roi_crop_backward", TORCH_FN(roi_crop_backward_cpu));
}

}  // namespace pydetectron::ops::cpu
