// Schemas of pydetectron::softmax_focal_loss and its backward, and the autocast wrapper
// (the CPU and CUDA kernels register themselves in cpu/ and cuda/).
//
//   softmax_focal_loss(logits [N, C], labels [N] int64, alpha, gamma, reduction) -> loss
//       Detectron's SoftmaxFocalLoss per row (softmax_focal_loss_math.h). Label -1:
//       ignored (loss 0, no gradient); a label outside [-1, C) is an error. reduction
//       'none': [N]; 'sum': a 0-dim tensor; 'mean': the sum over the rows that are not
//       ignored divided by their number (NaN when there are none).
//   softmax_focal_loss_backward(grad, logits, labels, alpha, gamma, reduction)
//       -> grad_logits [N, C]
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/autocast.h"

namespace pydetectron::ops {
namespace {

at::Tensor softmax_focal_loss_autocast(const at::Tensor& logits, const at::Tensor& labels,
                                       double alpha, double gamma, c10::string_view reduction) {
  return call_without_autocast<decltype(softmax_focal_loss_autocast)>(
      "pydetectron::softmax_focal_loss", to_float32(logits), labels, alpha, gamma, reduction);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pydetectron, m) {
  m.def(
      "softmax_focal_loss(Tensor logits, Tensor labels, float alpha, float gamma, "
      "str reduction) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "softmax_focal_loss_backward(Tensor grad, Tensor logits, Tensor labels, float alpha, "
      "float gamma, str reduction) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCPU, m) {
  m.impl("softmax_focal_loss", TORCH_FN(softmax_focal_loss_autocast));
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCUDA, m) {
  m.impl("softmax_focal_loss", TORCH_FN(softmax_focal_loss_autocast));
}

}  // namespace pydetectron::ops
