// Softmax focal loss of one row (Detectron's SoftmaxFocalLoss), shared by the CPU and
// CUDA kernels:
//
//   p = softmax(logits), y = label, loss = -a (1 - p_y)^gamma log(p_y),
//   a = alpha for y > 0 (foreground), 1 - alpha for y == 0 (background), 1 if alpha < 0.
//
// The kernels reduce a row to four numbers: its largest logit mx, the label's logit l_y,
// e_y = exp(l_y - mx) and others = sum_{j != y} exp(l_j - mx). From those, with
// s = e_y + others:
//   log p_y = -log1p(others) when l_y is the largest logit (p_y may be close to 1), else
//             (l_y - mx) - log(s) (then p_y <= 1/2 and log(s) loses nothing);
//   1 - p_y = others / s, never 1 - (something close to 1).
// Gradient: d loss / d l_y = a (1 - p_y)^gamma (gamma p_y log p_y - (1 - p_y)) = g_y and,
// for j != y, d loss / d l_j = -g_y p_j / (1 - p_y) = -g_y exp(l_j - mx) / others: no
// (1 - p_y)^(gamma - 1), which is unbounded for gamma < 1. The power policy P
// (focal_math.h) supplies (1 - p_y)^gamma; M the math.
#pragma once

#include "ops/common/focal_math.h"
#include "ops/common/host_device.h"

namespace pydetectron::ops {

template <typename T>
struct SoftmaxFocalTerms {
  T loss;
  T grad_label;  // d loss / d l_y
  T other_scale;  // d loss / d l_j = -other_scale * exp(l_j - mx) for j != y
};

template <typename T>
PYDET_HOST_DEVICE PYDET_FORCE_INLINE T softmax_focal_weight(int64_t label, T alpha) {
  if (alpha < T(0)) return T(1);
  return label > 0 ? alpha : T(1) - alpha;
}

template <typename M, typename T, typename P>
PYDET_HOST_DEVICE PYDET_FORCE_INLINE SoftmaxFocalTerms<T> softmax_focal_terms(
    T label_logit, T max_logit, T e_label, T others, T weight, const P& power) {
  const T s = e_label + others;
  const T log_p = label_logit == max_logit ? -M::log1p(others)
                                           : (label_logit - max_logit) - M::log(s);
  const T one_minus_p = others / s;
  const T p = e_label / s;
  const T focal = power.value(one_minus_p);
  SoftmaxFocalTerms<T> terms;
  terms.loss = -weight * focal * log_p;
  terms.grad_label = weight * focal * (power.gamma * p * log_p - one_minus_p);
  terms.other_scale = others > T(0) ? terms.grad_label / others : T(0);
  return terms;
}

}  // namespace pydetectron::ops
