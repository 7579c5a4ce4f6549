// CPU kernels of pydetectron::roi_pool and roi_pool_backward.
//
// The forward pools channel vectors of a channels-last image when the input is channels
// last or the RoIs cover the map often enough to pay for the copy, else channel planes
// (roi_pool_kernels.h). The backward runs in parallel over (image, channel block) items
// with the RoIs of that image inside, so each grad_input plane has a single writer (no
// atomics). Ties keep the first maximum in row-major order. float16 and bfloat16
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
#include "ops/common/spatial_order.h"
#include "ops/roi_pool/cpu/roi_pool_kernels.h"
#include "ops/roi_pool/roi_pool_geometry.h"

namespace pydetectron::ops::cpu {
namespace {

template <typename T>
std::vector<PoolBins> build_bins(const T* rois, int64_t num_rois, T spatial_scale, int pooled_h,
                                 int pooled_w, int height, int width) {
  std::vector<PoolBins> all(num_rois);
  at::parallel_for(0, num_rois, 64, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const PoolRoi r = pool_roi(rois + n * 5, spatial_scale);
      PoolBins& bins = all[n];
      bins.h_begin.resize(pooled_h);
      bins.h_end.resize(pooled_h);
      bins.w_begin.resize(pooled_w);
      bins.w_end.resize(pooled_w);
      for (int p = 0; p < pooled_h; ++p) {
        pool_bin<T>(p, r.height, pooled_h, r.start_h, height, bins.h_begin[p], bins.h_end[p]);
      }
      for (int p = 0; p < pooled_w; ++p) {
        pool_bin<T>(p, r.width, pooled_w, r.start_w, width, bins.w_begin[p], bins.w_end[p]);
      }
    }
  });
  return all;
}

std::tuple<at::Tensor, at::Tensor> roi_pool_forward_cpu(const at::Tensor& input,
                                                        const at::Tensor& rois,
                                                        double spatial_scale,
                                                        int64_t pooled_height,
                                                        int64_t pooled_width) {
  check_roi_op_inputs(input, rois, "roi_pool");
  check_output_size(pooled_height, pooled_width, "roi_pool");
  if (is_reduced_float(input)) {
    auto [output, argmax] = roi_pool_forward_cpu(input.to(at::kFloat), rois.to(at::kFloat),
                                                 spatial_scale, pooled_height, pooled_width);
    return {output.to(input.scalar_type()), argmax};
  }
  const int64_t num_rois = rois.size(0);
  const int64_t batch = input.size(0), channels = input.size(1);
  const int64_t height = input.size(2), width = input.size(3);
  at::Tensor output = at::empty({num_rois, channels, pooled_height, pooled_width}, input.options());
  at::Tensor argmax = at::empty_like(output, input.options().dtype(at::kInt));
  if (output.numel() == 0) return {output, argmax};
  if (height == 0 || width == 0) return {output.zero_(), argmax.fill_(-1)};

  const at::Tensor rois_c = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_pool_forward_cpu", [&] {
    using T = scalar_t;
    const T* roi_data = rois_c.const_data_ptr<T>();
    check_batch_indices_cpu(roi_data, num_rois, batch, "roi_pool");
    const int ph = static_cast<int>(pooled_height), pw = static_cast<int>(pooled_width);
    const auto bins = build_bins(roi_data, num_rois, static_cast<T>(spatial_scale), ph, pw,
                                 static_cast<int>(height), static_cast<int>(width));
    int64_t work = 0;
    for (const auto& b : bins) work += b.area();
    T* out = output.mutable_data_ptr<T>();
    int32_t* arg = argmax.mutable_data_ptr<int32_t>();
    const int64_t plane = height * width, num_bins = pooled_height * pooled_width;

    if (use_channels_last(input, work)) {
      const at::Tensor image = input.contiguous(at::MemoryFormat::ChannelsLast);
      const T* in = image.const_data_ptr<T>();
      const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
      // Items are (channel block, RoI), each writing its own part of the outputs; the
      // RoIs go in spatial order so that consecutive items read overlapping pixels.
      const std::vector<int64_t> order = spatial_order(roi_data, num_rois);
      parallel_dynamic(num_rois * blocks, work * channels, [&](int64_t item) {
        const int64_t n = order[item % num_rois];
        const int64_t c_begin = (item / num_rois) * kChannelBlock;
        const int64_t b = static_cast<int64_t>(roi_data[n * 5]);
        thread_local std::vector<T> best_buf;
        thread_local std::vector<int32_t> arg_buf;
        pool_roi_channels_last(bins[n], in + b * plane * channels, width, channels, c_begin,
                               std::min(kChannelBlock, channels - c_begin), ph, pw,
                               out + n * channels * num_bins, arg + n * channels * num_bins,
                               best_buf, arg_buf);
      });
      return;
    }
    // Items are (image, channel block): the planes stay in cache for all their RoIs.
    const at::Tensor input_c = input.contiguous();
    const T* in = input_c.const_data_ptr<T>();
    const auto groups = rois_by_batch(roi_data, num_rois, batch);
    const int64_t block = plane_channel_block(plane * sizeof(T), channels, batch);
    const int64_t blocks = (channels + block - 1) / block;
    parallel_dynamic(batch * blocks, work * channels, [&](int64_t item) {
      const int64_t b = item / blocks, c_begin = (item % blocks) * block;
      const int64_t c_end = std::min(channels, c_begin + block);
      for (const int64_t n : groups[b]) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          const int64_t offset = (n * channels + c) * num_bins;
          pool_plane(bins[n], in + (b * channels + c) * plane, width, ph, pw, out + offset,
                     arg + offset);
        }
      }
    });
  });
  return {output, argmax};
}

at::Tensor roi_pool_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                 const at::Tensor& argmax, double spatial_scale,
                                 int64_t pooled_height, int64_t pooled_width, int64_t batch_size,
                                 int64_t channels, int64_t height, int64_t width) {
  check_roi_grad(grad, rois, channels, pooled_height, pooled_width, "roi_pool_backward");
  TORCH_CHECK_VALUE(argmax.sizes() == grad.sizes(), "roi_pool_backward: argmax must have shape ",
                    grad.sizes(), ", got ", argmax.sizes());
  TORCH_CHECK_TYPE(argmax.scalar_type() == at::kInt,
                   "roi_pool_backward: argmax must be int32, got ", argmax.scalar_type());
  if (is_reduced_float(grad)) {
    return roi_pool_backward_cpu(grad.to(at::kFloat), rois.to(at::kFloat), argmax, spatial_scale,
                                 pooled_height, pooled_width, batch_size, channels, height, width)
        .to(grad.scalar_type());
  }
  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;

  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor argmax_c = argmax.contiguous();
  const at::Tensor rois_c = rois.contiguous();
  const int64_t num_rois = rois.size(0);
  const int64_t plane = height * width;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "roi_pool_backward_cpu", [&] {
    using T = scalar_t;
    const T* roi_data = rois_c.const_data_ptr<T>();
    check_batch_indices_cpu(roi_data, num_rois, batch_size, "roi_pool_backward");
    const auto groups = rois_by_batch(roi_data, num_rois, batch_size);
    const T* g = grad_c.const_data_ptr<T>();
    const int32_t* arg = argmax_c.const_data_ptr<int32_t>();
    T* gi = grad_input.mutable_data_ptr<T>();
    const int64_t num_bins = pooled_height * pooled_width;
    // Items are (image, channel block): each grad_input plane has a single writer.
    const int64_t block = plane_channel_block(plane * sizeof(T), channels, batch_size);
    const int64_t blocks = (channels + block - 1) / block;
    parallel_dynamic(batch_size * blocks, num_rois * channels * num_bins, [&](int64_t item) {
      const int64_t b = item / blocks, c_begin = (item % blocks) * block;
      const int64_t c_end = std::min(channels, c_begin + block);
      for (const int64_t n : groups[b]) {
        for (int64_t c = c_begin; c < c_end; ++c) {
          T* dst = gi + (b * channels + c) * plane;
          const int64_t offset = (n * channels + c) * num_bins;
          for (int64_t bin = 0; bin < num_bins; ++bin) {
            const int32_t a = arg[offset + bin];
            if (a >= 0 && a < plane) dst[a] += g[offset + bin];
          }
        }
      }
    });
  });
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CPU, m) {
  m.impl("roi_pool", TORCH_FN(roi_pool_forward_cpu));
  m.impl("roi_pool_backward", TORCH_FN(roi_pool_backward_cpu));
}

}  // namespace pydetectron::ops::cpu
