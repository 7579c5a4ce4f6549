// Greedy NMS over boxes that are already in decreasing score order.
//
// Each candidate is tested against the boxes kept so far (kept in compact arrays) and
// the test stops at the first kept box that suppresses it, so memory stays linear and
// most candidates of a cluster are rejected after a few IoUs. The kept boxes are tested
// in fixed-size chunks so the compiler can vectorise the IoU arithmetic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pydetectron::ops::cpu {

// Boxes as separate coordinate arrays (structure of arrays), in score order.
template <typename T>
struct BoxArrays {
  std::vector<T> x1, y1, x2, y2, area;

  void resize(int64_t n) {
    x1.resize(n);
    y1.resize(n);
    x2.resize(n);
    y2.resize(n);
    area.resize(n);
  }
};

// True when box (bx1, by1, bx2, by2, barea) overlaps any of the kept boxes [0, count)
// with IoU > threshold. The IoU expression is the usual inter / (a + b - inter).
template <typename T>
inline bool overlaps_any(const BoxArrays<T>& kept, int64_t count, T bx1, T by1, T bx2, T by2,
                         T barea, T threshold, T offset) {
  constexpr int64_t kChunk = 16;
  const T* kx1 = kept.x1.data();
  const T* ky1 = kept.y1.data();
  const T* kx2 = kept.x2.data();
  const T* ky2 = kept.y2.data();
  const T* karea = kept.area.data();
  int64_t k = 0;
  for (; k + kChunk <= count; k += kChunk) {
    int hit = 0;
    for (int64_t i = k; i < k + kChunk; ++i) {
      const T w = std::max(T(0), std::min(kx2[i], bx2) - std::max(kx1[i], bx1) + offset);
      const T h = std::max(T(0), std::min(ky2[i], by2) - std::max(ky1[i], by1) + offset);
      const T inter = w * h;
      hit |= (inter / (karea[i] + barea - inter) > threshold);
    }
    if (hit) return true;
  }
  for (; k < count; ++k) {
    const T w = std::max(T(0), std::min(kx2[k], bx2) - std::max(kx1[k], bx1) + offset);
    const T h = std::max(T(0), std::min(ky2[k], by2) - std::max(ky1[k], by1) + offset);
    const T inter = w * h;
    if (inter / (karea[k] + barea - inter) > threshold) return true;
  }
  return false;
}

// Runs greedy NMS on boxes[begin, end) (score order); sets keep[i] = 1 for kept boxes.
// `kept` is scratch space reused across calls.
template <typename T>
void greedy_nms(const BoxArrays<T>& boxes, int64_t begin, int64_t end, T threshold, T offset,
                uint8_t* keep, BoxArrays<T>& kept) {
  kept.resize(end - begin);
  int64_t count = 0;
  for (int64_t j = begin; j < end; ++j) {
    const T bx1 = boxes.x1[j], by1 = boxes.y1[j], bx2 = boxes.x2[j], by2 = boxes.y2[j];
    const T barea = boxes.area[j];
    if (overlaps_any(kept, count, bx1, by1, bx2, by2, barea, threshold, offset)) {
      keep[j] = 0;
      continue;
    }
    keep[j] = 1;
    kept.x1[count] = bx1;
    kept.y1[count] = by1;
    kept.x2[count] = bx2;
    kept.y2[count] = by2;
    kept.area[count] = barea;
    ++count;
  }
}

}  // namespace pydetectron::ops::cpu
