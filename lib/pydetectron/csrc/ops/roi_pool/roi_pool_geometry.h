// RoIPool bin geometry (Fast R-CNN convention, as in torchvision), shared by the CPU
// and CUDA kernels: the RoI is rounded to whole pixels, each bin covers
// [floor(p * bin), ceil((p + 1) * bin)) pixels of it, clipped to the feature map.
//
// The pixel arithmetic is 64-bit: rounded coordinates are clamped to +-2^52, which keeps
// every conversion defined (an infinite coordinate is a RoI out to 2^52), and a RoI with
// a NaN coordinate has only empty bins. The bin fractions are computed in T, as
// torchvision does, so float32 RoIs of more than 2^24 pixels round their bin edges.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/common/host_device.h"

namespace pydetectron::ops {

constexpr int64_t kMaxPoolCoordinate = int64_t(1) << 52;

struct PoolRoi {
  int64_t start_h, start_w;  // first pixel of the rounded RoI
  int64_t height, width;     // RoI size in pixels, at least 1
};

// round(v) as a 64-bit pixel index within +-2^52 (v is not NaN).
template <typename T>
PYDET_HOST_DEVICE inline int64_t rounded_pixel(T v) {
  const T r = round(v);
  const T limit = static_cast<T>(kMaxPoolCoordinate);
  if (r < -limit) return -kMaxPoolCoordinate;
  return r <= limit ? static_cast<int64_t>(r) : kMaxPoolCoordinate;
}

template <typename T>
PYDET_HOST_DEVICE inline PoolRoi pool_roi(const T* roi, T spatial_scale) {
  PoolRoi r;
  if (roi[1] != roi[1] || roi[2] != roi[2] || roi[3] != roi[3] || roi[4] != roi[4]) {
    r.start_h = r.start_w = kMaxPoolCoordinate;  // beyond every map: all bins empty
    r.height = r.width = 1;
    return r;
  }
  r.start_w = rounded_pixel(roi[1] * spatial_scale);
  r.start_h = rounded_pixel(roi[2] * spatial_scale);
  const int64_t end_w = rounded_pixel(roi[3] * spatial_scale);
  const int64_t end_h = rounded_pixel(roi[4] * spatial_scale);
  r.width = end_w - r.start_w + 1 > 1 ? end_w - r.start_w + 1 : 1;
  r.height = end_h - r.start_h + 1 > 1 ? end_h - r.start_h + 1 : 1;
  return r;
}

// Pixel range [begin, end) of bin p along an axis (may be empty after clipping).
template <typename T>
PYDET_HOST_DEVICE inline void pool_bin(int p, int64_t roi_size, int pooled, int64_t roi_start,
                                       int size, int& begin, int& end) {
  const T bin = static_cast<T>(roi_size) / static_cast<T>(pooled);
  const int64_t b = static_cast<int64_t>(floor(static_cast<T>(p) * bin)) + roi_start;
  const int64_t e = static_cast<int64_t>(ceil(static_cast<T>(p + 1) * bin)) + roi_start;
  begin = static_cast<int>(b < 0 ? 0 : (b > size ? size : b));
  end = static_cast<int>(e < 0 ? 0 : (e > size ? size : e));
}

}  // namespace pydetectron::ops
