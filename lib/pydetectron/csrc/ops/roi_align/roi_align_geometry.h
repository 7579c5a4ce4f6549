// RoIAlign sampling geometry, shared by the CPU and CUDA kernels so both sample the
// same points (Mask R-CNN / Detectron convention, `aligned` shifts by half a pixel).
//
// A RoI is split into pooled_h x pooled_w bins; each bin averages grid_h x grid_w
// bilinear samples at regularly spaced points. Bilinear weights factor into a y part
// and an x part, and a sample outside [-1, size] on either axis counts as zero, so the
// whole operation is separable: the kernels work with per-axis (pixel, weight) taps.
//
// Sample counts are 64-bit and the average's divisor is a floating point product, so a
// huge RoI (46341 or more samples per axis overflow a 32-bit count) still divides by
// the right number. Only the samples that fall inside [-1, size] are visited: their
// positions are monotonic in the sample index, so they are one run of indices, found by
// bisection, and a RoI far larger than the map costs no more than one that covers it.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/common/host_device.h"

namespace pydetectron::ops {

// Upper bound of the samples per bin and axis (reached only by RoIs of more than 2^62
// pixels or infinite ones, whose samples all lie outside the map).
constexpr int64_t kMaxAlignGrid = int64_t(1) << 62;

template <typename T>
struct AlignGeometry {
  T start_h, start_w;          // RoI origin in input pixels
  T bin_h, bin_w;              // bin size in input pixels
  int64_t grid_h, grid_w;      // samples per bin along each axis (0: none)
  T count;                     // samples per bin, at least 1 (the average's divisor)
};

// ceil(roi_size / pooled) samples, or none for an empty, negative or NaN size.
template <typename T>
PYDET_HOST_DEVICE inline int64_t adaptive_grid(T roi_size, int pooled) {
  const T grid = ceil(roi_size / static_cast<T>(pooled));
  if (!(grid > T(0))) return 0;
  return grid < static_cast<T>(kMaxAlignGrid) ? static_cast<int64_t>(grid) : kMaxAlignGrid;
}

template <typename T>
PYDET_HOST_DEVICE inline AlignGeometry<T> align_geometry(const T* roi, T spatial_scale,
                                                         int pooled_h, int pooled_w,
                                                         int64_t sampling_ratio, bool aligned) {
  const T offset = aligned ? T(0.5) : T(0);
  AlignGeometry<T> g;
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  T roi_w = roi[3] * spatial_scale - offset - g.start_w;
  T roi_h = roi[4] * spatial_scale - offset - g.start_h;
  if (!aligned) {  // legacy: malformed RoIs are forced to 1x1 (a NaN size stays NaN)
    roi_w = roi_w < T(1) ? T(1) : roi_w;
    roi_h = roi_h < T(1) ? T(1) : roi_h;
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  const int64_t fixed = sampling_ratio < kMaxAlignGrid ? sampling_ratio : kMaxAlignGrid;
  g.grid_h = sampling_ratio > 0 ? fixed : adaptive_grid(roi_h, pooled_h);
  g.grid_w = sampling_ratio > 0 ? fixed : adaptive_grid(roi_w, pooled_w);
  const T count = static_cast<T>(g.grid_h) * static_cast<T>(g.grid_w);
  g.count = count > T(1) ? count : T(1);
  return g;
}

// Where bin p starts along one axis; sample positions are measured from here.
template <typename T>
PYDET_HOST_DEVICE inline T bin_base(T start, int p, T bin) {
  return start + static_cast<T>(p) * bin;
}

// Position of sample i (of `grid`) in the bin that starts at `base`.
template <typename T>
PYDET_HOST_DEVICE inline T sample_position(T base, T bin, int64_t i, int64_t grid) {
  return base + (static_cast<T>(i) + T(0.5)) * bin / static_cast<T>(grid);
}

// Smallest i in [0, grid] with sign * position(i) >= bound (> bound when `strict`);
// sign * position is non-decreasing in i, so the test flips once.
template <typename T>
PYDET_HOST_DEVICE inline int64_t first_sample_past(T base, T bin, int64_t grid, T sign, T bound,
                                                   bool strict) {
  int64_t lo = 0, hi = grid;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const T key = sign * sample_position(base, bin, mid, grid);
    if (strict ? key > bound : key >= bound) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// The samples [first, last) of the bin at `base` whose positions lie in [-1, size]; all
// others read zero. Positions increase with i when bin >= 0 and decrease otherwise.
template <typename T>
PYDET_HOST_DEVICE inline void samples_inside(T base, T bin, int64_t grid, int size,
                                             int64_t& first, int64_t& last) {
  const T sign = bin >= T(0) ? T(1) : T(-1);
  const T low = sign > 0 ? T(-1) : -static_cast<T>(size);
  const T high = sign > 0 ? static_cast<T>(size) : T(1);
  first = first_sample_past(base, bin, grid, sign, low, false);
  last = first_sample_past(base, bin, grid, sign, high, true);
  if (last < first) last = first;
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
