// CPU kernels of pydetectron::roi_align and roi_align_backward.
//
// Each RoI is sampled with its separable taps (separable_taps.h), built once per call
// and shared by all channels. The forward runs on channel vectors of a channels-last
// image (roi_align_channels_last.h) when the input is channels last or the RoIs read the
// map often enough to pay for the copy, else on channel planes (roi_align_planes.h).
// The backward runs in parallel over (image, channel block) items of grad_input: each
// plane is owned by one thread, which adds the contributions of all RoIs of that image,
// so there are no atomics and no races. float16 and bfloat16 compute in float32.
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
#include "ops/common/spatial_order.h"
#include "ops/roi_align/cpu/roi_align_channels_last.h"
#include "ops/roi_align/cpu/roi_align_planes.h"
#include "ops/roi_align/cpu/separable_taps.h"

namespace pydetectron::ops::cpu {
namespace {

template <typename T>
std::vector<RoiTaps<T>> build_all_taps(const T* rois, int64_t num_rois, T spatial_scale,
                                       int pooled_h, int pooled_w, int64_t sampling_ratio,
                                       bool aligned, int height, int width) {
  std::vector<RoiTaps<T>> taps(num_rois);
  at::parallel_for(0, num_rois, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      build_roi_taps(rois + n * 5, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned,
                     height, width, taps[n]);
    }
  });
  return taps;
}

at::Tensor roi_align_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                 double spatial_scale, int64_t pooled_height, int64_t pooled_width,
                                 int64_t sampling_ratio, bool aligned) {
  check_roi_op_inputs(input, rois, "roi_align");
  check_output_size(pooled_height, pooled_width, "roi_align");
  if (is_reduced_float(input)) {
    return roi_align_forward_cpu(input.to(at::kFloat), rois.to(at::kFloat), spatial_scale,
                                 pooled_height, pooled_width, sampling_ratio, aligned)
        .to(input.scalar_type());
  }
  const int64_t num_rois = rois.size(0);
  const int64_t channels = input.size(1), height = input.size(2), width = input.size(3);
  at::Tensor output =
      at::empty({num_rois, channels, pooled_height, pooled_width}, input.options());
  if (output.numel() == 0) return output;
  if (height == 0 || width == 0) return output.zero_();

  const at::Tensor rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align_forward_cpu", [&] {
    using T = scalar_t;
    const T* roi_data = rois_c.const_data_ptr<T>();
    check_batch_indices_cpu(roi_data, num_rois, input.size(0), "roi_align");
    const int ph = static_cast<int>(pooled_height), pw = static_cast<int>(pooled_width);
    const auto taps = build_all_taps(roi_data, num_rois, static_cast<T>(spatial_scale), ph, pw,
                                     sampling_ratio, aligned,
                                     static_cast<int>(height), static_cast<int>(width));
    int64_t work = 0;
    for (const auto& t : taps) work += align_work(t, pw);
    T* out = output.mutable_data_ptr<T>();
    const int64_t plane = height * width, bins = pooled_height * pooled_width;

    if (use_channels_last(input, work)) {
      const at::Tensor image = input.contiguous(at::MemoryFormat::ChannelsLast);
      const T* in = image.const_data_ptr<T>();
      const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
      // Items are (channel block, RoI), each writing its own part of the output; the
      // RoIs go in spatial order so that consecutive items read overlapping pixels.
      const std::vector<int64_t> order = spatial_order(roi_data, num_rois);
      parallel_dynamic(num_rois * blocks, work * channels, [&](int64_t item) {
        const int64_t n = order[item % num_rois];
        const int64_t c_begin = (item / num_rois) * kChannelBlock;
        const int64_t b = static_cast<int64_t>(roi_data[n * 5]);
        thread_local std::vector<T> rows_buf, bins_buf;
        align_roi_channels_last(taps[n], in + b * plane * channels, width, channels, c_begin,
                                std::min(kChannelBlock, channels - c_begin), ph, pw,
                                out + n * channels * bins, rows_buf, bins_buf);
      });
      return;
    }
    // Items are (image, channel block): the planes stay in cache for all their RoIs.
    const at::Tensor input_c = input.contiguous();
    const T* in = input_c.const_data_ptr<T>();
    const auto groups = rois_by_batch(roi_data, num_rois, input.size(0));
    const int64_t block = plane_channel_block(plane * sizeof(T), channels, input.size(0));
    const int64_t blocks = (channels + block - 1) / block;
    parallel_dynamic(input.size(0) * blocks, work * channels, [&](int64_t item) {
      const int64_t b = item / blocks, c_begin = (item % blocks) * block;
      const int64_t c_end = std::min(channels, c_begin + block);
      std::vector<T> rows_buf;
      for (const int64_t n : groups[b]) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          align_plane(taps[n], in + (b * channels + c) * plane, width, ph, pw,
                      out + (n * channels + c) * bins, rows_buf);
        }
      }
    });
  });
  return output;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                  double spatial_scale, int64_t pooled_height,
                                  int64_t pooled_width, int64_t batch_size, int64_t channels,
                                  int64_t height, int64_t width, int64_t sampling_ratio,
                                  bool aligned) {
  check_roi_grad(grad, rois, channels, pooled_height, pooled_width, "roi_align_backward");
  if (is_reduced_float(grad)) {
    return roi_align_backward_cpu(grad.to(at::kFloat), rois.to(at::kFloat), spatial_scale,
                                  pooled_height, pooled_width, batch_size, channels, height,
                                  width, sampling_ratio, aligned)
        .to(grad.scalar_type());
  }
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const int64_t num_rois = rois.size(0);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_align_backward_cpu", [&] {
    using T = scalar_t;
    const T* roi_data = rois_c.const_data_ptr<T>();
    check_batch_indices_cpu(roi_data, num_rois, batch_size, "roi_align_backward");
    const int ph = static_cast<int>(pooled_height), pw = static_cast<int>(pooled_width);
    const auto taps = build_all_taps(roi_data, num_rois, static_cast<T>(spatial_scale), ph, pw,
                                     sampling_ratio, aligned,
                                     static_cast<int>(height), static_cast<int>(width));
    const auto groups = rois_by_batch(roi_data, num_rois, batch_size);
    const T* g = grad_c.const_data_ptr<T>();
    T* gi = grad_input.mutable_data_ptr<T>();
    const int64_t plane = height * width, bins = pooled_height * pooled_width;
    // Items are (image, channel block): each grad_input plane has a single writer.
    const int64_t block = plane_channel_block(plane * sizeof(T), channels, batch_size);
    const int64_t blocks = (channels + block - 1) / block;
    parallel_dynamic(batch_size * blocks, num_rois * channels * bins * 4, [&](int64_t item) {
      const int64_t b = item / blocks, c_begin = (item % blocks) * block;
      const int64_t c_end = std::min(channels, c_begin + block);
      std::vector<T> rows_buf;
      for (const int64_t n : groups[b]) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          align_plane_backward(taps[n], g + (n * channels + c) * bins, width, ph, pw,
                               gi + (b * channels + c) * plane, rows_buf);
        }
      }
    });
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CPU, m) {
  m.impl("roi_align", TORCH_FN(roi_align_forward_cpu));
  m.impl("roi_align_backward", TORCH_FN(roi_align_backward_cpu));
}

}  // namespace pydetectron::ops::cpu
