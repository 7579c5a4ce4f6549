// RoIAlign sampling geometry, shared by the CPU and CUDA kernels so both sample the
// same points (Mask R-CNN / Detectron convention, `aligned` shifts by half a pixel).
//
// A RoI is split into pooled_h x pooled_w bins; each bin averages grid_h x grid_w
// bilinear samples at regularly spaced points. Bilinear weights factor into a y part
// and an x part, and a sample outside [-1, size] on either axis counts as zero, so the
// whole operation is separable: the kernels work with per-axis (pixel, weight) taps.
#pragma once

#include <cmath>

#include "ops/common/host_device.h"

namespace pydetectron::ops {

template <typename T>
struct AlignGeometry {
  T start_h, start_w;  // RoI origin in input pixels
  T bin_h, bin_w;      // bin size in input pixels
  int grid_h, grid_w;  // samples per bin along each axis
  T count;             // samples per bin, at least 1 (the average's divisor)
};

template <typename T>
PYDET_HOST_DEVICE inline AlignGeometry<T> align_geometry(const T* roi, T spatial_scale,
                                                         int pooled_h, int pooled_w,
                                                         int sampling_ratio, bool aligned) {
  const T offset = aligned ? T(0.5) : T(0);
  AlignGeometry<T> g;
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  T roi_w = roi[3] * spatial_scale - offset - g.start_w;
  T roi_h = roi[4] * spatial_scale - offset - g.start_h;
  if (!aligned) {  // legacy: malformed RoIs are forced to 1x1
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceil(roi_h / pooled_h));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceil(roi_w / pooled_w));
  const int count = g.grid_h * g.grid_w;
  g.count = static_cast<T>(count > 1 ? count : 1);
  return g;
}

// Position of sample `i` (of `grid`) in bin `p` along one axis.
template <typename T>
PYDET_HOST_DEVICE inline T sample_position(T start, int p, T bin, int i, int grid) {
  return start + p * bin + static_cast<T>(i + .5f) * bin / static_cast<T>(grid);
}

// Linear interpolation taps of position v on an axis of `size` pixels: pixels lo, hi
// with weights w_lo, w_hi. Returns false (no taps) when v is outside [-1, size].
template <typename T>
PYDET_HOST_DEVICE inline bool axis_taps(T v, int size, int& lo, int& hi, T& w_lo, T& w_hi) {
  if (!(v >= T(-1) && v <= static_cast<T>(size))) return false;
  if (v <= 0) v = 0;
  lo = static_cast<int>(v);
  if (lo >= size - 1) {
    hi = lo = size - 1;
    v = static_cast<T>(lo);
  } else {
    hi = lo + 1;
  }
  w_hi = v - lo;
  w_lo = T(1) - w_hi;
  return true;
}

}  // namespace pydetectron::ops
