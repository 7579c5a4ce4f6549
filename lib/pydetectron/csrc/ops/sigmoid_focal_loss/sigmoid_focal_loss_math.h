// Sigmoid focal loss of one element (logit x, target t in [0, 1]) and its derivatives,
// shared by the CPU and CUDA kernels. The definition is torchvision's:
//
//   p = sigmoid(x), ce = BCE-with-logits(x, t), p_t = p t + (1 - p)(1 - t),
//   loss = a_t ce (1 - p_t)^gamma, a_t = alpha t + (1 - alpha)(1 - t) (1 when alpha < 0).
//
// Stable for any |x|: with e = exp(-|x|) <= 1, p and q = 1 - p are e / (1 + e) and
// 1 / (1 + e) (which is which depends on the sign of x), so neither is 1 - (something
// close to 1); ce = max(x, 0) - x t + log1p(e); m = 1 - p_t = p (1 - t) + q t.
//
// d loss / dx = a_t m^gamma [(p - t) + gamma ce (1 - 2t) p q / m]: p q / m <= max(p, q),
// so the term stays bounded as m -> 0 (where m^gamma = 0 takes it to 0); p - t is
// computed as p (1 - t) - q t.
// d loss / dt = (2 alpha - 1) ce m^gamma + a_t [-x m^gamma + ce gamma m^(gamma-1) (q - p)].
//
// The power policy P (focal_math.h) supplies m^gamma and its derivative; M the math.
#pragma once

#include "ops/common/focal_math.h"
#include "ops/common/host_device.h"

namespace pydetectron::ops {

// a_t = base + slope * t: (1 - alpha) + (2 alpha - 1) t, or 1 when alpha < 0.
template <typename T>
struct SigmoidFocalSettings {
  T alpha_base, alpha_slope;

  PYDET_HOST_DEVICE static SigmoidFocalSettings of(T alpha) {
    if (alpha < T(0)) return {T(1), T(0)};
    return {T(1) - alpha, T(2) * alpha - T(1)};
  }
};

// The intermediate values of one element that the loss and both derivatives use.
template <typename T>
struct SigmoidFocalPoint {
  T p, q, ce, m, a;
};

template <typename M, typename T>
PYDET_HOST_DEVICE PYDET_FORCE_INLINE SigmoidFocalPoint<T> sigmoid_focal_point(
    T x, T t, const SigmoidFocalSettings<T>& s) {
  const bool positive = x >= T(0);
  const T e = M::exp(positive ? -x : x);
  const T r = T(1) / (T(1) + e);
  SigmoidFocalPoint<T> v;
  v.p = positive ? r : e * r;
  v.q = positive ? e * r : r;
  v.ce = (positive ? x : T(0)) - x * t + M::log1p(e);
  v.m = v.p * (T(1) - t) + v.q * t;
  v.a = s.alpha_base + s.alpha_slope * t;
  return v;
}

template <typename M, typename T, typename P>
PYDET_HOST_DEVICE PYDET_FORCE_INLINE T sigmoid_focal_loss_value(T x, T t,
                                                                const SigmoidFocalSettings<T>& s,
                                                                const P& power) {
  const SigmoidFocalPoint<T> v = sigmoid_focal_point<M>(x, t, s);
  return v.a * v.ce * power.value(v.m);
}

// d loss / d x.
template <typename M, typename T, typename P>
PYDET_HOST_DEVICE PYDET_FORCE_INLINE T sigmoid_focal_grad_input(T x, T t,
                                                                const SigmoidFocalSettings<T>& s,
                                                                const P& power) {
  const SigmoidFocalPoint<T> v = sigmoid_focal_point<M>(x, t, s);
  // (The division runs on a safe divisor and is selected afterwards, without a branch.)
  const T pq_over_m = v.m > T(0) ? v.p * v.q / (v.m > T(0) ? v.m : T(1)) : T(0);
  const T spread = power.gamma * v.ce * (T(1) - T(2) * t) * pq_over_m;
  // p - t written as p (1 - t) - q t: exact for t in {0, 1} when p or q is tiny.
  return v.a * power.value(v.m) * ((v.p * (T(1) - t) - v.q * t) + spread);
}

// d loss / d t.
template <typename M, typename T, typename P>
PYDET_HOST_DEVICE PYDET_FORCE_INLINE T sigmoid_focal_grad_target(T x, T t,
                                                                 const SigmoidFocalSettings<T>& s,
                                                                 const P& power) {
  const SigmoidFocalPoint<T> v = sigmoid_focal_point<M>(x, t, s);
  const T focal = power.value(v.m);
  const T d_focal = v.ce * power.derivative(v.m) * (v.q - v.p);
  return s.alpha_slope * v.ce * focal + v.a * (-x * focal + d_focal);
}

}  // namespace pydetectron::ops
