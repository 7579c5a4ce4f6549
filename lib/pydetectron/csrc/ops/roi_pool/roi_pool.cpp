// Schemas of pydetectron::roi_pool (max pooling, with the argmax the backward needs)
// and its backward, and the autocast wrapper.
//
//   roi_pool(input [N, C, H, W], rois [K, 5], spatial_scale, pooled_height, pooled_width)
//       -> (output [K, C, PH, PW], argmax [K, C, PH, PW] int32: pixel h * W + w of the
//          maximum in its plane, -1 for an empty bin, whose output is 0)
//   roi_pool_backward(grad, rois, argmax, spatial_scale, PH, PW, N, C, H, W) -> grad_input
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/autocast.h"

namespace pydetectron::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> roi_pool_autocast(const at::Tensor& input,
                                                     const at::Tensor& rois, double spatial_scale,
                                                     int64_t pooled_height, int64_t pooled_width) {
  return call_without_autocast<decltype(roi_pool_autocast)>(
      "pydetectron::roi_pool", to_float32(input), to_float32(rois), spatial_scale, pooled_height,
      pooled_width);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pydetectron, m) {
  m.def(
      "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width) -> (Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
      "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
      "SymInt height, SymInt width) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCPU, m) {
  m.impl("roi_pool", TORCH_FN(roi_pool_autocast));
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCUDA, m) {
  m.impl("roi_pool", TORCH_FN(roi_pool_autocast));
}

}  // namespace pydetectron::ops
