// RoIAlign CPU kernels on one channel plane (NCHW layout): forward samples a plane with
// a RoI's separable taps, backward adds the transposed operation into a grad plane.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/roi_align/cpu/separable_taps.h"

namespace pydetectron::ops::cpu {

// out[ph, pw] = sum over taps of one channel plane (H x W, row stride `width`).
template <typename T>
void align_plane(const RoiTaps<T>& taps, const T* plane, int64_t width, int pooled_h,
                 int pooled_w, T* out, std::vector<T>& rows_buf) {
  const int64_t num_rows = static_cast<int64_t>(taps.rows.size());
  rows_buf.resize(num_rows * pooled_w);
  const AxisTaps<T>& x = taps.x;
  for (int64_t r = 0; r < num_rows; ++r) {
    const T* src = plane + taps.rows[r] * width;
    T* row = rows_buf.data() + r * pooled_w;
    for (int pw = 0; pw < pooled_w; ++pw) {
      T acc = 0;
      for (int32_t t = x.begin[pw]; t < x.begin[pw + 1]; ++t) acc += x.weight[t] * src[x.pixel[t]];
      row[pw] = acc;
    }
  }
  const AxisTaps<T>& y = taps.y;
  for (int ph = 0; ph < pooled_h; ++ph) {
    T* dst = out + ph * pooled_w;
    std::fill(dst, dst + pooled_w, T(0));
    for (int32_t t = y.begin[ph]; t < y.begin[ph + 1]; ++t) {
      const T w = y.weight[t];
      const T* row = rows_buf.data() + y.pixel[t] * pooled_w;
      for (int pw = 0; pw < pooled_w; ++pw) dst[pw] += w * row[pw];
    }
  }
}

// grad_plane += Ay^T * grad * Ax for one channel (the transpose of align_plane).
template <typename T>
void align_plane_backward(const RoiTaps<T>& taps, const T* grad, int64_t width, int pooled_h,
                          int pooled_w, T* grad_plane, std::vector<T>& rows_buf) {
  const int64_t num_rows = static_cast<int64_t>(taps.rows.size());
  rows_buf.assign(num_rows * pooled_w, T(0));
  const AxisTaps<T>& y = taps.y;
  for (int ph = 0; ph < pooled_h; ++ph) {
    const T* g = grad + ph * pooled_w;
    for (int32_t t = y.begin[ph]; t < y.begin[ph + 1]; ++t) {
      const T w = y.weight[t];
      T* row = rows_buf.data() + y.pixel[t] * pooled_w;
      for (int pw = 0; pw < pooled_w; ++pw) row[pw] += w * g[pw];
    }
  }
  const AxisTaps<T>& x = taps.x;
  for (int64_t r = 0; r < num_rows; ++r) {
    T* dst = grad_plane + taps.rows[r] * width;
    const T* row = rows_buf.data() + r * pooled_w;
    for (int pw = 0; pw < pooled_w; ++pw) {
      const T g = row[pw];
      for (int32_t t = x.begin[pw]; t < x.begin[pw + 1]; ++t) dst[x.pixel[t]] += x.weight[t] * g;
    }
  }
}

}  // namespace pydetectron::ops::cpu
