// CPU kernels of pydetectron::nms and pydetectron::batched_nms (float16 and bfloat16
// boxes are compared in float32).
//
// Both sort the scores once (stable, descending), copy the boxes into score order as
// coordinate arrays and run greedy NMS (greedy_nms.h). batched_nms groups the boxes by
// class after the sort and runs the classes in parallel.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "ops/common/parallel.h"
#include "ops/common/reduced_float.h"
#include "ops/nms/cpu/greedy_nms.h"
#include "ops/nms/nms_checks.h"

namespace pydetectron::ops::cpu {
namespace {

// Copies boxes[order[i]] into score-ordered coordinate arrays with their areas.
template <typename T>
void gather_boxes(const T* boxes, const int64_t* order, int64_t n, T offset, BoxArrays<T>& out) {
  out.resize(n);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* b = boxes + order[i] * 4;
      out.x1[i] = b[0];
      out.y1[i] = b[1];
      out.x2[i] = b[2];
      out.y2[i] = b[3];
      out.area[i] = (b[2] - b[0] + offset) * (b[3] - b[1] + offset);
    }
  });
}

at::Tensor kept_indices(const std::vector<uint8_t>& keep, const int64_t* order, int64_t n,
                        const at::Tensor& like) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += keep[i];
  at::Tensor result = at::empty({count}, like.options().dtype(at::kLong));
  int64_t* out = result.data_ptr<int64_t>();
  for (int64_t i = 0, k = 0; i < n; ++i) {
    if (keep[i]) out[k++] = order[i];
  }
  return result;
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                   bool plus_one) {
  check_nms_inputs(boxes, scores, "nms");
  if (is_reduced_float(boxes)) {
    return nms_cpu(boxes.to(at::kFloat), scores.to(at::kFloat), iou_threshold, plus_one);
  }
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));

  const at::Tensor order_t = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  const at::Tensor boxes_c = boxes.contiguous();
  const int64_t* order = order_t.const_data_ptr<int64_t>();
  std::vector<uint8_t> keep(n);

  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_cpu", [&] {
    const scalar_t offset = plus_one ? scalar_t(1) : scalar_t(0);
    BoxArrays<scalar_t> sorted, kept;
    gather_boxes(boxes_c.const_data_ptr<scalar_t>(), order, n, offset, sorted);
    greedy_nms(sorted, 0, n, threshold_as<scalar_t>(iou_threshold), offset, keep.data(), kept);
  });
  return kept_indices(keep, order, n, boxes);
}

at::Tensor batched_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores,
                           const at::Tensor& idxs, double iou_threshold, bool plus_one) {
  check_nms_inputs(boxes, scores, "batched_nms");
  check_class_indices(boxes, idxs, "batched_nms");
  if (is_reduced_float(boxes)) {
    return batched_nms_cpu(boxes.to(at::kFloat), scores.to(at::kFloat), idxs, iou_threshold,
                           plus_one);
  }
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, boxes.options().dtype(at::kLong));

  // Score order, then a stable sort by class: each class is a run in score order.
  const at::Tensor order_t = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  const at::Tensor classes = idxs.to(at::kLong).index_select(0, order_t);
  auto [classes_sorted_t, by_class_t] = classes.sort(/*stable=*/true, 0, /*descending=*/false);
  const int64_t* order = order_t.const_data_ptr<int64_t>();
  const int64_t* by_class = by_class_t.const_data_ptr<int64_t>();
  const int64_t* classes_sorted = classes_sorted_t.const_data_ptr<int64_t>();

  // Runs of equal class, largest first so that the longest runs start early.
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t begin = 0; begin < n;) {
    int64_t end = begin + 1;
    while (end < n && classes_sorted[end] == classes_sorted[begin]) ++end;
    runs.emplace_back(begin, end);
    begin = end;
  }
  std::stable_sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    return a.second - a.first > b.second - b.first;
  });

  // Position t of the class-grouped order is box order[by_class[t]].
  std::vector<int64_t> grouped(n);
  for (int64_t t = 0; t < n; ++t) grouped[t] = order[by_class[t]];
  const at::Tensor boxes_c = boxes.contiguous();
  std::vector<uint8_t> keep_grouped(n);

  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "batched_nms_cpu", [&] {
    const scalar_t offset = plus_one ? scalar_t(1) : scalar_t(0);
    const scalar_t threshold = threshold_as<scalar_t>(iou_threshold);
    BoxArrays<scalar_t> sorted;
    gather_boxes(boxes_c.const_data_ptr<scalar_t>(), grouped.data(), n, offset, sorted);
    parallel_dynamic(static_cast<int64_t>(runs.size()), n * 64, [&](int64_t r) {
      BoxArrays<scalar_t> kept;
      greedy_nms(sorted, runs[r].first, runs[r].second, threshold, offset, keep_grouped.data(),
                 kept);
    });
  });

  // Back to score order: the result is sorted by decreasing score over all classes.
  std::vector<uint8_t> keep(n);
  for (int64_t t = 0; t < n; ++t) keep[by_class[t]] = keep_grouped[t];
  return kept_indices(keep, order, n, boxes);
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CPU, m) {
  m.impl("nms", TORCH_FN(nms_cpu));
  m.impl("batched_nms", TORCH_FN(batched_nms_cpu));
}

}  // namespace pydetectron::ops::cpu
