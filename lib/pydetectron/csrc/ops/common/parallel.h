// Load-balanced parallel loop on top of at::parallel_for. Work items of very different
// cost (RoIs of different sizes, classes with different box counts) are handed out one
// at a time from a shared counter, so no thread idles while another has a long tail.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace pydetectron::ops {

// Below this much work (roughly, inner-loop iterations) threads cost more than they save.
constexpr int64_t kMinParallelWork = 1 << 15;

// Calls fn(i) for i in [0, num_items); `total_work` estimates the whole loop's cost.
template <typename F>
void parallel_dynamic(int64_t num_items, int64_t total_work, const F& fn) {
  if (num_items <= 0) return;
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), num_items);
  if (workers <= 1 || total_work < kMinParallelWork || at::in_parallel_region()) {
    for (int64_t i = 0; i < num_items; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < num_items;
         i = next.fetch_add(1, std::memory_order_relaxed)) {
      fn(i);
    }
  });
}

}  // namespace pydetectron::ops
