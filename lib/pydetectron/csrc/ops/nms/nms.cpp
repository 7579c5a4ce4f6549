// Schemas of the NMS ops and their autocast wrappers (the CPU and CUDA kernels
// register themselves in cpu/ and cuda/).
//
//   nms(boxes [N, 4], scores [N], iou_threshold, plus_one) -> kept indices [M] (int64),
//       sorted by decreasing score. A box is dropped when its IoU with a kept,
//       higher-scoring box is > iou_threshold. plus_one=True uses the Detectron
//       convention (width = x2 - x1 + 1).
//   batched_nms(boxes, scores, idxs [N], iou_threshold, plus_one): the same, with NMS
//       applied within each value of idxs (any integer type, compared as int64) only:
//       boxes of different classes are never compared.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/autocast.h"

namespace pydetectron::ops {
namespace {

at::Tensor nms_autocast(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
                        bool plus_one) {
  return call_without_autocast<decltype(nms_autocast)>(
      "pydetectron::nms", to_float32(boxes), to_float32(scores), iou_threshold, plus_one);
}

at::Tensor batched_nms_autocast(const at::Tensor& boxes, const at::Tensor& scores,
                                const at::Tensor& idxs, double iou_threshold, bool plus_one) {
  return call_without_autocast<decltype(batched_nms_autocast)>(
      "pydetectron::batched_nms", to_float32(boxes), to_float32(scores), idxs, iou_threshold,
      plus_one);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pydetectron, m) {
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold, bool plus_one=False) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def(
      "batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold, "
      "bool plus_one=False) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCPU, m) {
  m.impl("nms", TORCH_FN(nms_autocast));
  m.impl("batched_nms", TORCH_FN(batched_nms_autocast));
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCUDA, m) {
  m.impl("nms", TORCH_FN(nms_autocast));
  m.impl("batched_nms", TORCH_FN(batched_nms_autocast));
}

}  // namespace pydetectron::ops
