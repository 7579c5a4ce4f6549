// RoICrop geometry (crop-and-resize), shared by the CPU and CUDA kernels.
//
// This is the RoICrop of the Detectron.pytorch port: an affine grid
//   theta = [[(x2 - x1) / (W - 1), 0, (x1 + x2 - W + 1) / (W - 1)],
//            [0, (y2 - y1) / (H - 1), (y1 + y2 - H + 1) / (H - 1)]]
// sampled bilinearly with align_corners=True and zero padding. Worked out in pixels,
// output column p of n samples x = x1 + (x2 - x1) * p / (n - 1) (the centre when
// n == 1), and likewise for rows, where (x1, y1, x2, y2) is the RoI times spatial_scale.
// Pixels outside the feature map read as zero.
#pragma once

#include <cmath>

#include "ops/common/host_device.h"

namespace pydetectron::ops {

template <typename T>
PYDET_HOST_DEVICE inline T crop_position(T a, T b, int p, int n) {
  if (n <= 1) return (a + b) / T(2);
  return a + (b - a) * static_cast<T>(p) / static_cast<T>(n - 1);
}

// Taps of position v on an axis of `size` pixels: pixels lo and lo + 1 with their
// weights; a pixel outside [0, size) gets weight 0 (and a safe index 0).
template <typename T>
PYDET_HOST_DEVICE inline void crop_taps(T v, int size, int& lo, int& hi, T& w_lo, T& w_hi) {
  if (!(v > T(-1) && v < static_cast<T>(size))) {  // also catches NaN
    lo = hi = 0;
    w_lo = w_hi = T(0);
    return;
  }
  const T f = floor(v);
  lo = static_cast<int>(f);
  hi = lo + 1;
  w_hi = v - f;
  w_lo = T(1) - w_hi;
  if (lo < 0) {
    lo = 0;
    w_lo = T(0);
  }
  if (hi >= size) {
    hi = 0;
    w_hi = T(0);
  }
}

}  // namespace pydetectron::ops
