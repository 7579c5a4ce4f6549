// Choice between the two memory layouts of the CPU RoI kernels.
//
// Channel planes (NCHW): one plane at a time, scalar loops over the RoI's pixels; no
// copy of the input. Channels last (NHWC): the inner loops run over contiguous channel
// vectors, which the compiler vectorises, at the price of a transposed copy when the
// input is NCHW. The copy pays off once the RoIs touch the map more than a few times.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace pydetectron::ops {

// Channel vectors are processed in blocks of this many values (one cache-friendly row
// of taps per block).
constexpr int64_t kChannelBlock = 64;

inline bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() &&
         t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// `work_per_channel`: inner-loop iterations the kernel does per channel over all RoIs.
inline bool use_channels_last(const at::Tensor& input, int64_t work_per_channel) {
  if (input.size(1) < 8) return false;  // too few channels to vectorise over
  if (is_channels_last(input)) return true;
  const int64_t map_pixels = input.size(0) * input.size(2) * input.size(3);
  return work_per_channel > 4 * map_pixels;
}

// Channels that one item of a channel-plane kernel handles together: enough that each
// RoI's output (or gradient) for the item is one contiguous piece, which no other thread
// writes (or reads) next to; few enough that the item's planes stay in cache and that
// there are a few items per thread.
inline int64_t plane_channel_block(int64_t plane_bytes, int64_t channels, int64_t images) {
  const int64_t fit = (512 * 1024) / std::max<int64_t>(plane_bytes, 1);
  const int64_t spread = images * channels / (4 * static_cast<int64_t>(at::get_num_threads()));
  const int64_t most = std::max<int64_t>(1, std::min<int64_t>(channels, kChannelBlock));
  return std::clamp<int64_t>(std::min(fit, spread), 1, most);
}

}  // namespace pydetectron::ops
