// Pieces shared by the sigmoid and softmax focal losses on CPU and CUDA: the reduction
// setting, the math functions of the precise kernels, and the focal power m^gamma.
//
// The formulas are templates over a math policy `M` (exp, log, log1p). The CUDA kernels
// and the CPU float64 kernels use PreciseMath (the C library / CUDA functions); the CPU
// float32 kernels use FastMath (cpu/fast_math.h), which vectorises.
#pragma once

#include <cmath>
#include <limits>

#include "ops/common/host_device.h"

namespace pydetectron::ops {

enum class Reduction { kNone, kMean, kSum };

PYDET_HOST_DEVICE PYDET_FORCE_INLINE float precise_exp(float x) { return expf(x); }
PYDET_HOST_DEVICE PYDET_FORCE_INLINE double precise_exp(double x) { return exp(x); }
PYDET_HOST_DEVICE PYDET_FORCE_INLINE float precise_log(float x) { return logf(x); }
PYDET_HOST_DEVICE PYDET_FORCE_INLINE double precise_log(double x) { return log(x); }
PYDET_HOST_DEVICE PYDET_FORCE_INLINE float precise_log1p(float x) { return log1pf(x); }
PYDET_HOST_DEVICE PYDET_FORCE_INLINE double precise_log1p(double x) { return log1p(x); }

struct PreciseMath {
  template <typename T>
  PYDET_HOST_DEVICE PYDET_FORCE_INLINE static T exp(T x) { return precise_exp(x); }
  template <typename T>
  PYDET_HOST_DEVICE PYDET_FORCE_INLINE static T log(T x) { return precise_log(x); }
  template <typename T>
  PYDET_HOST_DEVICE PYDET_FORCE_INLINE static T log1p(T x) { return precise_log1p(x); }
};

// The focal factor m^gamma (0^0 = 1) and its derivative gamma m^(gamma - 1), for m in
// [0, 1] and gamma >= 0, as two policies the formulas take as a template argument:
// SquarePower for gamma = 2 (RetinaNet's; exact products) and GeneralPower for any
// gamma (exp and log of a safe argument, then a select). Neither branches per element,
// so the CPU loops over them vectorise; with_focal_power picks one per call.
template <typename T>
struct SquarePower {
  T gamma = T(2);
  PYDET_HOST_DEVICE PYDET_FORCE_INLINE T value(T m) const { return m * m; }
  PYDET_HOST_DEVICE PYDET_FORCE_INLINE T derivative(T m) const { return T(2) * m; }
};

template <typename M, typename T>
struct GeneralPower {
  T gamma;
  T value_at_zero;       // 0^gamma: 1 for gamma = 0, else 0
  T derivative_at_zero;  // gamma 0^(gamma - 1): 0 (gamma = 0 or > 1), 1 (gamma = 1), inf

  PYDET_HOST_DEVICE static GeneralPower of(T gamma) {
    GeneralPower power;
    power.gamma = gamma;
    power.value_at_zero = gamma == T(0) ? T(1) : T(0);
    power.derivative_at_zero = gamma == T(0) || gamma > T(1) ? T(0)
                               : gamma == T(1)                ? T(1)
                                                              : std::numeric_limits<T>::infinity();
    return power;
  }

  PYDET_HOST_DEVICE PYDET_FORCE_INLINE T value(T m) const {
    const T power = M::exp(gamma * M::log(m > T(0) ? m : T(1)));
    return m > T(0) ? power : value_at_zero;
  }

  PYDET_HOST_DEVICE PYDET_FORCE_INLINE T derivative(T m) const {
    const T power = gamma * M::exp((gamma - T(1)) * M::log(m > T(0) ? m : T(1)));
    return m > T(0) ? power : derivative_at_zero;
  }
};

// Calls fn(power) with the power policy for gamma (SquarePower when gamma == 2).
template <typename M, typename T, typename F>
decltype(auto) with_focal_power(T gamma, const F& fn) {
  if (gamma == T(2)) return fn(SquarePower<T>{});
  return fn(GeneralPower<M, T>::of(gamma));
}

}  // namespace pydetectron::ops
