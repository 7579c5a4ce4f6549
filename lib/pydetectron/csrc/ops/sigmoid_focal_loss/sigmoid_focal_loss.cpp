// Schemas of pydetectron::sigmoid_focal_loss and its backward, and the autocast wrapper
// (the CPU and CUDA kernels register themselves in cpu/ and cuda/).
//
//   sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction) -> loss
//       inputs: logits of any shape; targets: the same shape and dtype, in [0, 1].
//       reduction 'none': loss per element (inputs' shape); 'sum' / 'mean': a 0-dim
//       tensor (the mean of no elements is NaN). alpha < 0: no alpha weighting.
//   sigmoid_focal_loss_backward(grad, inputs, targets, alpha, gamma, reduction,
//       targets_grad) -> (grad_inputs, grad_targets); grad_targets is empty ([0]) unless
//       targets_grad.
// The formulas are in sigmoid_focal_loss_math.h.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/autocast.h"

namespace pydetectron::ops {
namespace {

at::Tensor sigmoid_focal_loss_autocast(const at::Tensor& inputs, const at::Tensor& targets,
                                       double alpha, double gamma, c10::string_view reduction) {
  return call_without_autocast<decltype(sigmoid_focal_loss_autocast)>(
      "pydetectron::sigmoid_focal_loss", to_float32(inputs), to_float32(targets), alpha, gamma,
      reduction);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(pydetectron, m) {
  m.def(
      "sigmoid_focal_loss(Tensor inputs, Tensor targets, float alpha, float gamma, "
      "str reduction) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "sigmoid_focal_loss_backward(Tensor grad, Tensor inputs, Tensor targets, float alpha, "
      "float gamma, str reduction, bool targets_grad) -> (Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCPU, m) {
  m.impl("sigmoid_focal_loss", TORCH_FN(sigmoid_focal_loss_autocast));
}

TORCH_LIBRARY_IMPL(pydetectron, AutocastCUDA, m) {
  m.impl("sigmoid_focal_loss", TORCH_FN(sigmoid_focal_loss_autocast));
}

}  // namespace pydetectron::ops
