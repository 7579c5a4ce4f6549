// Schemas of pydetectron::roi_align and its backward, and the autocast wrapper.
//
//   roi_align(input [N, C, H, W], rois [K, 5], spatial_scale, pooled_height, pooled_width,
//             sampling_ratio, aligned) -> [K, C, pooled_height, pooled_width]
//   roi_align_backward(grad [K, C, PH, PW], rois, spatial_scale, PH, PW, N, C, H, W,
//             sampling_ratio, aligned) -> grad_input [N, C, H, W]
//
// sampling_ratio <= 0 picks ceil(roi_size / pooled_size) samples per bin; aligned=True
// shifts the RoI by -0.5 pixel (Detectron2), aligned=False is the Detectron convention.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/autocast.h"

namespace pydetectron::ops {
namespace {

at::Tensor roi_align_autocast(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                              int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                              bool aligned) {
  return call_without_autocast<decltype(roi_align_autocast)>(
      "pydetectron::roi_align", to_float32(input), to_float32(rois), spatial_scale, pooled_height,
      pooled_width, sampling_ratio, aligned);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pydetectron, m) {
  m.def(
      "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
      "int sampling_ratio, bool aligned) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCPU, m) {
  m.impl("roi_align", TORCH_FN(roi_align_autocast));
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCUDA, m) {
  m.impl("roi_align", TORCH_FN(roi_align_autocast));
}

}  // namespace pydetectron::ops
