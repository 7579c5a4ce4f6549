// Schemas of pydetectron::roi_crop (bilinear crop-and-resize of each RoI, the RoICrop
// of Detectron.pytorch, see roi_crop_geometry.h) and its backward, and the autocast
// wrapper.
//
//   roi_crop(input [N, C, H, W], rois [K, 5], spatial_scale, output_height, output_width)
//       -> [K, C, output_height, output_width]
//   roi_crop_backward(grad, rois, spatial_scale, OH, OW, N, C, H, W) -> grad_input
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/autocast.h"

namespace pydetectron::ops {
namespace {

at::Tensor roi_crop_autocast(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                             int64_t output_height, int64_t output_width) {
  return call_without_autocast<decltype(roi_crop_autocast)>(
      "pydetectron::roi_crop", to_float32(input), to_float32(rois), spatial_scale, output_height,
      output_width);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pydetectron, m) {
  m.def(
      "roi_crop(Tensor input, Tensor rois, float spatial_scale, SymInt output_height, "
      "SymInt output_width) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "roi_crop_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt output_height, "
      "SymInt output_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) "
      "-> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCPU, m) {
  m.impl("roi_crop", TORCH_FN(roi_crop_autocast));
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCUDA, m) {
  m.impl("roi_crop", TORCH_FN(roi_crop_autocast));
}

}  // namespace pydetectron::ops
