// Per-RoI separable sampling tables for the RoIAlign CPU kernels.
//
// RoIAlign output = Ay * V * Ax^T for each channel plane V, where Ay [pooled_h x H] and
// Ax [pooled_w x W] are sparse: each bin has a few (pixel, weight) taps, repeated pixels
// merged. The kernels first interpolate the distinct input rows along x (one pass per
// row, shared by every bin that uses the row), then combine rows along y. With dense
// sampling (adaptive grids, small RoIs) this reads each input pixel once instead of four
// times per sample. The tables are built once per RoI and shared by all channels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/roi_align/roi_align_geometry.h"

namespace pydetectron::ops::cpu {

template <typename T>
struct AxisTaps {
  std::vector<int32_t> begin;  // bins + 1 offsets into pixel/weight
  std::vector<int32_t> pixel;
  std::vector<T> weight;

  void add(int32_t px, T w, int32_t bin_begin) {
    // Consecutive samples share pixels: merge with one of the last few taps of the bin.
    const int32_t last = static_cast<int32_t>(pixel.size());
    for (int32_t t = last - 1; t >= std::max(bin_begin, last - 3); --t) {
      if (pixel[t] == px) {
        weight[t] += w;
        return;
      }
    }
    pixel.push_back(px);
    weight.push_back(w);
  }
};

template <typename T>
struct RoiTaps {
  AxisTaps<T> y;              // y.pixel holds a slot into `rows`, not the row itself
  AxisTaps<T> x;
  std::vector<int32_t> rows;  // distinct input rows used by the RoI, ascending
};

// Taps of one axis: `bins` bins of `grid` samples from `start`, on an axis of `size`
// pixels, each weight multiplied by `scale`. Only the samples inside [-1, size] are
// visited (the others read zero).
template <typename T>
void build_axis_taps(T start, T bin, int bins, int64_t grid, int size, T scale,
                     AxisTaps<T>& taps) {
  taps.begin.assign(1, 0);
  for (int p = 0; p < bins; ++p) {
    const int32_t bin_begin = static_cast<int32_t>(taps.pixel.size());
    const T base = bin_base(start, p, bin);
    int64_t first, last;
    samples_inside(base, bin, grid, size, first, last);
    for (int64_t i = first; i < last; ++i) {
      int lo, hi;
      T w_lo, w_hi;
      if (!axis_taps(sample_position(base, bin, i, grid), size, lo, hi, w_lo, w_hi)) continue;
      taps.add(lo, w_lo * scale, bin_begin);
      taps.add(hi, w_hi * scale, bin_begin);
    }
    taps.begin.push_back(static_cast<int32_t>(taps.pixel.size()));
  }
}

template <typename T>
void build_roi_taps(const T* roi, T spatial_scale, int pooled_h, int pooled_w,
                    int64_t sampling_ratio, bool aligned, int height, int width, RoiTaps<T>& taps) {
  const AlignGeometry<T> g =
      align_geometry(roi, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
  build_axis_taps(g.start_h, g.bin_h, pooled_h, g.grid_h, height, T(1) / g.count, taps.y);
  build_axis_taps(g.start_w, g.bin_w, pooled_w, g.grid_w, width, T(1), taps.x);
  taps.rows.assign(taps.y.pixel.begin(), taps.y.pixel.end());
  std::sort(taps.rows.begin(), taps.rows.end());
  taps.rows.erase(std::unique(taps.rows.begin(), taps.rows.end()), taps.rows.end());
  for (int32_t& px : taps.y.pixel) {
    px = static_cast<int32_t>(std::lower_bound(taps.rows.begin(), taps.rows.end(), px) -
                              taps.rows.begin());
  }
}

}  // namespace pydetectron::ops::cpu
