// RoIAlign CPU forward on a channels-last image: the separable taps of a RoI applied to
// vectors of `block` channels at once, so every inner loop is a contiguous, vectorisable
// multiply-add over channels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/roi_align/cpu/separable_taps.h"

namespace pydetectron::ops::cpu {

// Work of one RoI per channel (inner-loop iterations), for the layout choice.
template <typename T>
int64_t align_work(const RoiTaps<T>& taps, int pooled_w) {
  return static_cast<int64_t>(taps.rows.size()) * static_cast<int64_t>(taps.x.pixel.size()) +
         static_cast<int64_t>(taps.y.pixel.size()) * pooled_w;
}

// Channels [c_begin, c_begin + block) of one RoI. `image` is [H, W, C] (channels last);
// `out` is the RoI's [C, pooled_h, pooled_w] output.
template <typename T>
void align_roi_channels_last(const RoiTaps<T>& taps, const T* image, int64_t width,
                             int64_t channels, int64_t c_begin, int64_t block, int pooled_h,
                             int pooled_w, T* out, std::vector<T>& rows_buf,
                             std::vector<T>& bins_buf) {
  const int64_t num_rows = static_cast<int64_t>(taps.rows.size());
  const int64_t row_len = pooled_w * block;
  rows_buf.assign(num_rows * row_len, T(0));
  const AxisTaps<T>& x = taps.x;
  for (int64_t r = 0; r < num_rows; ++r) {
    const T* src = image + taps.rows[r] * width * channels + c_begin;
    for (int pw = 0; pw < pooled_w; ++pw) {
      T* __restrict dst = rows_buf.data() + r * row_len + pw * block;
      for (int32_t t = x.begin[pw]; t < x.begin[pw + 1]; ++t) {
        const T w = x.weight[t];
        const T* __restrict v = src + static_cast<int64_t>(x.pixel[t]) * channels;
        for (int64_t c = 0; c < block; ++c) dst[c] += w * v[c];
      }
    }
  }
  bins_buf.resize(row_len);
  const AxisTaps<T>& y = taps.y;
  const int64_t bins = static_cast<int64_t>(pooled_h) * pooled_w;
  for (int ph = 0; ph < pooled_h; ++ph) {
    T* __restrict acc = bins_buf.data();
    std::fill(acc, acc + row_len, T(0));
    for (int32_t t = y.begin[ph]; t < y.begin[ph + 1]; ++t) {
      const T w = y.weight[t];
      const T* __restrict row = rows_buf.data() + y.pixel[t] * row_len;
      for (int64_t i = 0; i < row_len; ++i) acc[i] += w * row[i];
    }
    for (int pw = 0; pw < pooled_w; ++pw) {
      T* dst = out + c_begin * bins + ph * pooled_w + pw;
      for (int64_t c = 0; c < block; ++c) dst[c * bins] = acc[pw * block + c];
    }
  }
}

}  // namespace pydetectron::ops::cpu
