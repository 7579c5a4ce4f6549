// RoIPool CPU forward kernels for one RoI: on one channel plane (NCHW), or on a block
// of channels of a channels-last image (NHWC), where the max runs over contiguous
// channel vectors and vectorises. Both keep the first maximum in row-major order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pydetectron::ops::cpu {

// Clipped pixel ranges of every bin of one RoI.
struct PoolBins {
  std::vector<int> h_begin, h_end, w_begin, w_end;

  // Pixels read per channel (the kernel's work).
  int64_t area() const {
    int64_t rows = 0, cols = 0;
    for (size_t p = 0; p < h_begin.size(); ++p) rows += std::max(0, h_end[p] - h_begin[p]);
    for (size_t p = 0; p < w_begin.size(); ++p) cols += std::max(0, w_end[p] - w_begin[p]);
    return rows * cols;
  }
};

template <typename T>
void pool_plane(const PoolBins& bins, const T* plane, int64_t width, int pooled_h, int pooled_w,
                T* out, int32_t* argmax) {
  for (int ph = 0; ph < pooled_h; ++ph) {
    const int h0 = bins.h_begin[ph], h1 = bins.h_end[ph];
    for (int pw = 0; pw < pooled_w; ++pw) {
      const int w0 = bins.w_begin[pw], w1 = bins.w_end[pw];
      const int64_t bin = ph * pooled_w + pw;
      if (h1 <= h0 || w1 <= w0) {
        out[bin] = 0;
        argmax[bin] = -1;
        continue;
      }
      int64_t best = h0 * width + w0;
      T best_value = plane[best];
      for (int h = h0; h < h1; ++h) {
        const T* row = plane + h * width;
        for (int w = w0; w < w1; ++w) {
          if (row[w] > best_value) {
            best_value = row[w];
            best = h * width + w;
          }
        }
      }
      out[bin] = best_value;
      argmax[bin] = static_cast<int32_t>(best);
    }
  }
}

// Channels [c_begin, c_begin + block) of one RoI. `image` is [H, W, C]; `out` and
// `argmax` are the RoI's [C, pooled_h, pooled_w] outputs.
template <typename T>
void pool_roi_channels_last(const PoolBins& bins, const T* image, int64_t width, int64_t channels,
                            int64_t c_begin, int64_t block, int pooled_h, int pooled_w, T* out,
                            int32_t* argmax, std::vector<T>& best_buf,
                            std::vector<int32_t>& arg_buf) {
  best_buf.resize(block);
  arg_buf.resize(block);
  T* __restrict best = best_buf.data();
  int32_t* __restrict arg = arg_buf.data();
  const int64_t num_bins = static_cast<int64_t>(pooled_h) * pooled_w;
  for (int ph = 0; ph < pooled_h; ++ph) {
    const int h0 = bins.h_begin[ph], h1 = bins.h_end[ph];
    for (int pw = 0; pw < pooled_w; ++pw) {
      const int w0 = bins.w_begin[pw], w1 = bins.w_end[pw];
      const int64_t bin = ph * pooled_w + pw;
      T* dst = out + c_begin * num_bins + bin;
      int32_t* dst_arg = argmax + c_begin * num_bins + bin;
      if (h1 <= h0 || w1 <= w0) {
        for (int64_t c = 0; c < block; ++c) {
          dst[c * num_bins] = T(0);
          dst_arg[c * num_bins] = -1;
        }
        continue;
      }
      const int32_t first = static_cast<int32_t>(h0 * width + w0);
      const T* v0 = image + first * channels + c_begin;
      for (int64_t c = 0; c < block; ++c) {
        best[c] = v0[c];
        arg[c] = first;
      }
      for (int h = h0; h < h1; ++h) {
        for (int w = (h == h0 ? w0 + 1 : w0); w < w1; ++w) {
          const int32_t pixel = static_cast<int32_t>(h * width + w);
          const T* __restrict v = image + pixel * channels + c_begin;
          // Branch-free select (an all-ones mask where v > best) so the loop vectorises.
          for (int64_t c = 0; c < block; ++c) {
            const int32_t greater = -static_cast<int32_t>(v[c] > best[c]);
            arg[c] = (arg[c] & ~greater) | (pixel & greater);
            best[c] = v[c] > best[c] ? v[c] : best[c];
          }
        }
      }
      for (int64_t c = 0; c < block; ++c) {
        dst[c * num_bins] = best[c];
        dst_arg[c * num_bins] = arg[c];
      }
    }
  }
}

}  // namespace pydetectron::ops::cpu
