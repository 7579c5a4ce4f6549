// CUDA kernels of pydetectron::nms and pydetectron::batched_nms.
//
// The boxes are sorted by score on the device and split into segments (one segment for
// nms, one per class for batched_nms with many boxes). For each segment a mask kernel
// writes, for every box i, a bitmask of the later boxes j whose IoU with i is >
// threshold (64 boxes per 64-bit word, upper triangle only). batched_nms with fewer
// boxes runs one segment in score order and sets a bit only between boxes of the same
// class: the same decisions as per class (the IoUs of the unshifted boxes, exact class
// ids, no offsets that a NaN, an infinity or a large id could break) in one launch and
// without copying the class runs to the host. A scan kernel, one thread block per segment, then
// walks the boxes in score order on the device: a box is kept when no kept box before it
// has its bit set. Only the final keep flags leave the kernels; the mask never goes to
// the host.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/nms/nms_checks.h"

namespace pydetectron::ops::cuda {
namespace {

using Word = unsigned long long;
constexpr int kWordBits = 64;
constexpr int kScanThreads = 256;
// Dynamic shared memory for the scan's `removed` bits, leaving room for its static
// shared arrays within the default 48 KiB per block.
constexpr int64_t kMaxSharedWords = (48 * 1024 - 1024) / sizeof(Word);
// batched_nms up to this many boxes: one class-aware segment; above: one per class.
constexpr int64_t kClassAwareMaxBoxes = 25000;

__host__ __device__ inline int64_t words_for(int64_t n) { return (n + kWordBits - 1) / kWordBits; }

// Boxes of word w (64, or fewer in the last word) out of n.
__device__ inline int word_count(int64_t n, int64_t w) {
  const int64_t left = n - w * kWordBits;
  return static_cast<int>(left < kWordBits ? left : kWordBits);
}

template <typename A>
__device__ inline bool iou_above(const A* a, const A* b, A threshold, A offset) {
  const A w = max(A(0), min(a[2], b[2]) - max(a[0], b[0]) + offset);
  const A h = max(A(0), min(a[3], b[3]) - max(a[1], b[1]) + offset);
  const A inter = w * h;
  const A area_a = (a[2] - a[0] + offset) * (a[3] - a[1] + offset);
  const A area_b = (b[2] - b[0] + offset) * (b[3] - b[1] + offset);
  return inter / (area_a + area_b - inter) > threshold;
}

// Block (col_word, row_word) compares the 64 boxes of row_word with those of col_word.
// With `classes` (one id per box), only boxes of the same class can suppress each other.
template <typename T>
__global__ void nms_mask_kernel(int64_t n, const T* boxes, const int64_t* classes,
                                at::opmath_type<T> threshold, at::opmath_type<T> offset,
                                int64_t words, Word* mask) {
  using A = at::opmath_type<T>;
  const int64_t row_word = blockIdx.y, col_word = blockIdx.x;
  if (row_word > col_word) return;
  const int row_count = word_count(n, row_word);
  const int col_count = word_count(n, col_word);
  __shared__ A cols[kWordBits * 4];
  __shared__ int64_t col_classes[kWordBits];
  if (threadIdx.x < col_count) {
    const int64_t j = col_word * kWordBits + threadIdx.x;
    const T* b = boxes + j * 4;
#pragma unroll
    for (int k = 0; k < 4; ++k) cols[threadIdx.x * 4 + k] = static_cast<A>(b[k]);
    col_classes[threadIdx.x] = classes != nullptr ? classes[j] : 0;
  }
  __syncthreads();
  if (threadIdx.x >= row_count) return;
  const int64_t i = row_word * kWordBits + threadIdx.x;
  A box[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) box[k] = static_cast<A>(boxes[i * 4 + k]);
  const int64_t box_class = classes != nullptr ? classes[i] : 0;
  Word bits = 0;
  for (int j = row_word == col_word ? threadIdx.x + 1 : 0; j < col_count; ++j) {
    if (col_classes[j] == box_class && iou_above(box, cols + j * 4, threshold, offset)) {
      bits |= Word(1) << j;
    }
  }
  mask[i * words + col_word] = bits;
}

// One block per segment: greedy scan over the segment's mask, writing keep flags.
__global__ void nms_scan_kernel(const Word* mask, const int64_t* seg_start,
                                const int64_t* seg_count, const int64_t* seg_mask_offset,
                                int64_t max_words, bool use_shared, Word* removed_global,
                                bool* keep) {
  extern __shared__ Word shared_removed[];
  __shared__ Word diagonal[kWordBits];
  __shared__ Word kept_bits;
  const int64_t seg = blockIdx.x;
  const int64_t n = seg_count[seg];
  const int64_t words = words_for(n);
  const Word* m = mask + seg_mask_offset[seg];
  bool* seg_keep = keep + seg_start[seg];
  Word* removed = use_shared ? shared_removed : removed_global + seg * max_words;
  for (int64_t v = threadIdx.x; v < words; v += blockDim.x) removed[v] = 0;
  __syncthreads();

  for (int64_t w = 0; w < words; ++w) {
    const int count = word_count(n, w);
    if (threadIdx.x < kWordBits) {
      diagonal[threadIdx.x] =
          threadIdx.x < count ? m[(w * kWordBits + threadIdx.x) * words + w] : Word(0);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // Inside one word the decisions depend on each other: resolve them in order,
      // visiting only boxes that are still candidates.
      const Word valid = count == kWordBits ? ~Word(0) : ((Word(1) << count) - 1);
      Word candidates = ~removed[w] & valid;
      Word kept = 0;
      while (candidates) {
        const int b = __ffsll(static_cast<long long>(candidates)) - 1;
        kept |= Word(1) << b;
        candidates &= ~(Word(1) << b);
        candidates &= ~diagonal[b];
      }
      kept_bits = kept;
    }
    __syncthreads();
    const Word kept = kept_bits;
    if (threadIdx.x < count) seg_keep[w * kWordBits + threadIdx.x] = (kept >> threadIdx.x) & 1;
    // The kept boxes of word w remove their overlaps from all later words.
    for (int64_t v = w + 1 + threadIdx.x; v < words; v += blockDim.x) {
      Word acc = removed[v];
      for (Word bits = kept; bits; bits &= bits - 1) {
        const int b = __ffsll(static_cast<long long>(bits)) - 1;
        acc |= m[(w * kWordBits + b) * words + v];
      }
      removed[v] = acc;
    }
    __syncthreads();
  }
}

// Greedy NMS over `boxes` [n, 4] sorted by score, cut into independent segments
// (starts/counts on the host). `classes` (int64 [n], same order, or undefined) limits
// suppression to boxes of the same class. Returns keep flags [n] (bool) in box order.
at::Tensor segmented_nms(const at::Tensor& boxes, const at::Tensor& classes,
                         const std::vector<int64_t>& starts, const std::vector<int64_t>& counts,
                         double iou_threshold, bool plus_one) {
  const int64_t n = boxes.size(0);
  const int64_t segments = static_cast<int64_t>(starts.size());
  std::vector<int64_t> mask_offsets(segments);
  int64_t mask_words = 0, max_words = 0;
  for (int64_t s = 0; s < segments; ++s) {
    const int64_t words = words_for(counts[s]);
    TORCH_CHECK_VALUE(words <= 65535, "nms: at most ", 65535 * kWordBits,
                      " boxes per class are supported on CUDA, got ", counts[s]);
    mask_offsets[s] = mask_words;
    mask_words += counts[s] * words;
    max_words = std::max(max_words, words);
  }
  const auto long_options = boxes.options().dtype(at::kLong);
  at::Tensor mask = at::empty({std::max<int64_t>(mask_words, 1)}, long_options);
  Word* mask_data = reinterpret_cast<Word*>(mask.mutable_data_ptr<int64_t>());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_mask_cuda",
                                  [&] {
    using A = at::opmath_type<scalar_t>;
    const scalar_t* data = boxes.const_data_ptr<scalar_t>();
    const int64_t* class_data = classes.defined() ? classes.const_data_ptr<int64_t>() : nullptr;
    for (int64_t s = 0; s < segments; ++s) {
      if (counts[s] == 0) continue;
      const int64_t words = words_for(counts[s]);
      const dim3 grid(static_cast<unsigned int>(words), static_cast<unsigned int>(words));
      nms_mask_kernel<scalar_t><<<grid, kWordBits, 0, stream>>>(
          counts[s], data + starts[s] * 4,
          class_data != nullptr ? class_data + starts[s] : nullptr,
          threshold_as<A>(iou_threshold), plus_one ? A(1) : A(0), words,
          mask_data + mask_offsets[s]);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });

  std::vector<int64_t> table;
  table.reserve(3 * segments);
  table.insert(table.end(), starts.begin(), starts.end());
  table.insert(table.end(), counts.begin(), counts.end());
  table.insert(table.end(), mask_offsets.begin(), mask_offsets.end());
  const at::Tensor table_d =
      at::tensor(table, at::TensorOptions().dtype(at::kLong)).to(boxes.device());
  const int64_t* t = table_d.const_data_ptr<int64_t>();

  const bool use_shared = max_words <= kMaxSharedWords;
  at::Tensor removed_global;
  if (!use_shared) removed_global = at::empty({segments * max_words}, long_options);
  Word* removed_ptr =
      use_shared ? nullptr : reinterpret_cast<Word*>(removed_global.mutable_data_ptr<int64_t>());
  at::Tensor keep = at::zeros({n}, boxes.options().dtype(at::kBool));
  const size_t shared_bytes = use_shared ? max_words * sizeof(Word) : 0;
  nms_scan_kernel<<<static_cast<unsigned int>(segments), kScanThreads, shared_bytes, stream>>>(
      mask_data, t, t + segments, t + 2 * segments, max_words, use_shared, removed_ptr,
      keep.mutable_data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return keep;
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                    bool plus_one) {
  check_nms_inputs(boxes, scores, "nms");
  c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  const at::Tensor sorted = boxes.index_select(0, order).contiguous();
  const at::Tensor keep = segmented_nms(sorted, at::Tensor(), {0}, {n}, iou_threshold, plus_one);
  return order.masked_select(keep);
}

at::Tensor batched_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores,
                            const at::Tensor& idxs, double iou_threshold, bool plus_one) {
  check_nms_inputs(boxes, scores, "batched_nms");
  check_class_indices(boxes, idxs, "batched_nms");
  c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  const at::Tensor classes = idxs.to(at::kLong).index_select(0, order).contiguous();
  if (n <= kClassAwareMaxBoxes) {
    const at::Tensor sorted = boxes.index_select(0, order).contiguous();
    const at::Tensor keep = segmented_nms(sorted, classes, {0}, {n}, iou_threshold, plus_one);
    return order.masked_select(keep);
  }
  // Many boxes: a stable sort by class makes each class a run in score order.
  auto [classes_sorted, by_class] = classes.sort(/*stable=*/true, 0, /*descending=*/false);
  const at::Tensor grouped = order.index_select(0, by_class);
  const at::Tensor sorted = boxes.index_select(0, grouped).contiguous();

  const at::Tensor run_lengths =
      std::get<2>(at::unique_consecutive(classes_sorted, false, true)).cpu();
  const int64_t* lengths = run_lengths.const_data_ptr<int64_t>();
  std::vector<int64_t> starts, counts;
  for (int64_t s = 0, begin = 0; s < run_lengths.numel(); begin += lengths[s], ++s) {
    starts.push_back(begin);
    counts.push_back(lengths[s]);
  }
  const at::Tensor keep_grouped =
      segmented_nms(sorted, at::Tensor(), starts, counts, iou_threshold, plus_one);
  // Back to score order: the result is sorted by decreasing score over all classes.
  at::Tensor keep = at::empty_like(keep_grouped);
  keep.index_put_({by_class}, keep_grouped);
  return order.masked_select(keep);
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CUDA, m) {
  m.impl("nms", TORCH_FN(nms_cuda));
  m.impl("batched_nms", TORCH_FN(batched_nms_cuda));
}

}  // namespace pydetectron::ops::cuda
