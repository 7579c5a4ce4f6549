// Groups RoI numbers by the batch image they read from, so that backward kernels can
// give each (image, channel) plane to one thread and accumulate without atomics.
#pragma once

#include <cstdint>
#include <vector>

namespace pydetectron::ops {

template <typename T>
std::vector<std::vector<int64_t>> rois_by_batch(const T* rois, int64_t num_rois,
                                                int64_t batch_size) {
  std::vector<std::vector<int64_t>> groups(batch_size);
  for (int64_t n = 0; n < num_rois; ++n) {
    groups[static_cast<int64_t>(rois[n * 5])].push_back(n);
  }
  return groups;
}

}  // namespace pydetectron::ops
