// Orders RoIs along a Z-order (Morton) curve of their centres, image by image, so that
// RoIs processed one after the other overlap on the feature map and find its pixels
// still in cache.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace pydetectron::ops {

inline uint64_t spread_bits(uint32_t v) {  // 16 bits -> every other bit of 32
  uint64_t x = v & 0xffffu;
  x = (x | (x << 8)) & 0x00ff00ffu;
  x = (x | (x << 4)) & 0x0f0f0f0fu;
  x = (x | (x << 2)) & 0x33333333u;
  x = (x | (x << 1)) & 0x55555555u;
  return x;
}

template <typename T>
std::vector<int64_t> spatial_order(const T* rois, int64_t num_rois) {
  T max_coord = 1;
  for (int64_t n = 0; n < num_rois; ++n) {
    for (int k = 1; k < 5; ++k) {
      const T v = rois[n * 5 + k];
      if (v > max_coord && v < std::numeric_limits<T>::max()) max_coord = v;
    }
  }
  const T scale = T(65535) / (max_coord * 2);
  std::vector<uint64_t> key(num_rois);
  for (int64_t n = 0; n < num_rois; ++n) {
    const T* r = rois + n * 5;
    const auto quantise = [&](T v) {  // NaN and negatives go to 0
      const T q = v * scale;
      return static_cast<uint32_t>(q > T(0) ? (q < T(65535) ? q : T(65535)) : T(0));
    };
    const uint64_t morton = spread_bits(quantise(r[1] + r[3])) |
                            (spread_bits(quantise(r[2] + r[4])) << 1);
    key[n] = (static_cast<uint64_t>(r[0]) << 32) | morton;
  }
  std::vector<int64_t> order(num_rois);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return key[a] < key[b]; });
  return order;
}

}  // namespace pydetectron::ops
