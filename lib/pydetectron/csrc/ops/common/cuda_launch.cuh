// Launch helpers of the CUDA kernels: grid-stride loop bounds and the block count.
#pragma once

#include <algorithm>
#include <cstdint>

namespace pydetectron::ops::cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items (capped; each thread loops).
inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 1 << 16)));
}

}  // namespace pydetectron::ops::cuda

#define PYDET_CUDA_LOOP(index, n)                                                          \
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < (n); \
       index += static_cast<int64_t>(blockDim.x) * gridDim.x)
