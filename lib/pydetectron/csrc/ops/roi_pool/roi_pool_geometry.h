// RoIPool bin geometry (Fast R-CNN convention, as in torchvision), shared by the CPU
// and CUDA kernels: the RoI is rounded to whole pixels, each bin covers
// [floor(p * bin), ceil((p + 1) * bin)) pixels of it, clipped to the feature map.
#pragma once

#include <cmath>

#include "ops/common/host_device.h"

namespace pydetectron::ops {

struct PoolRoi {
  int start_h, start_w;  // first pixel of the rounded RoI
  int height, width;     // RoI size in pixels, at least 1
};

template <typename T>
PYDET_HOST_DEVICE inline PoolRoi pool_roi(const T* roi, T spatial_scale) {
  PoolRoi r;
  r.start_w = static_cast<int>(round(roi[1] * spatial_scale));
  r.start_h = static_cast<int>(round(roi[2] * spatial_scale));
  const int end_w = static_cast<int>(round(roi[3] * spatial_scale));
  const int end_h = static_cast<int>(round(roi[4] * spatial_scale));
  r.width = end_w - r.start_w + 1 > 1 ? end_w - r.start_w + 1 : 1;
  r.height = end_h - r.start_h + 1 > 1 ? end_h - r.start_h + 1 : 1;
  return r;
}

// Pixel range [begin, end) of bin p along an axis (may be empty after clipping).
template <typename T>
PYDET_HOST_DEVICE inline void pool_bin(int p, int roi_size, int pooled, int roi_start, int size,
                                       int& begin, int& end) {
  const T bin = static_cast<T>(roi_size) / static_cast<T>(pooled);
  begin = static_cast<int>(floor(static_cast<T>(p) * bin)) + roi_start;
  end = static_cast<int>(ceil(static_cast<T>(p + 1) * bin)) + roi_start;
  begin = begin < 0 ? 0 : (begin > size ? size : begin);
  end = end < 0 ? 0 : (end > size ? size : end);
}

}  // namespace pydetectron::ops
