// float32 exp, log and log1p written as straight-line arithmetic on the float's bits
// (no library calls, no branches), so that the compiler vectorises the CPU loops that
// call them: the fused focal-loss kernels are one pass over memory with vector math.
//
// exp and log use the Cephes polynomials (about 1 ulp in float32 over the whole range,
// subnormal results and arguments included); log1p uses log(1 + v) * v / ((1 + v) - 1),
// which cancels the rounding of 1 + v. Special values: exp(-inf) = 0, exp(+inf) = inf,
// log(0) = -inf, log(negative) = NaN, log(inf) = inf; NaN propagates.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

#include "ops/common/host_device.h"

namespace pydetectron::ops::cpu {

// 2^n for an integer n in [-126, 127] (a normal float).
PYDET_FORCE_INLINE float pow2_int(int32_t n) { return std::bit_cast<float>((n + 127) << 23); }

PYDET_FORCE_INLINE float fast_exp(float x) {
  const float inf = std::numeric_limits<float>::infinity();
  // Below -104 the result rounds to 0, above 88.73 it overflows.
  const float xc = x < -104.0f ? -104.0f : (x > 88.75f ? 88.75f : x);
  // n = round(x / ln 2): adding and removing 1.5 * 2^23 rounds to the nearest integer.
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;  // x - n ln 2, two parts
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3333519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  // Scale by 2^n in two steps, each a normal power of two, so subnormal results round once.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni >> 1;
  float result = y * pow2_int(half) * pow2_int(ni - half);
  result = x > 88.7228391f ? inf : result;
  return x != x ? x : result;
}

PYDET_FORCE_INLINE float fast_log(float x) {
  const float inf = std::numeric_limits<float>::infinity();
  // Subnormals are scaled by 2^23 first so that the exponent field holds their exponent.
  const bool subnormal = x < 1.17549435e-38f;
  const float xs = subnormal ? x * 8388608.0f : x;
  const int32_t bits = std::bit_cast<int32_t>(xs);
  int32_t exponent = ((bits >> 23) & 0xff) - 126 - (subnormal ? 23 : 0);
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
  const bool low = m < 0.707106781186547524f;                         // use [sqrt(.5), sqrt(2))
  exponent = low ? exponent - 1 : exponent;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const float e = static_cast<float>(exponent);
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  float result = (m + y) + 0.693359375f * e;
  result = x == 0.0f ? -inf : result;
  result = x == inf ? inf : result;
  return x >= 0.0f ? result : std::numeric_limits<float>::quiet_NaN();
}

PYDET_FORCE_INLINE float fast_log1p(float v) {
  const float u = 1.0f + v;
  const float d = u - 1.0f;
  const float result = d == 0.0f ? v : fast_log(u) * (v / d);
  return u == std::numeric_limits<float>::infinity() ? u : result;
}

// Math policy of the focal-loss formulas (ops/common/focal_math.h) for float32 on CPU.
struct FastMath {
  PYDET_FORCE_INLINE static float exp(float x) { return fast_exp(x); }
  PYDET_FORCE_INLINE static float log(float x) { return fast_log(x); }
  PYDET_FORCE_INLINE static float log1p(float x) { return fast_log1p(x); }
};

}  // namespace pydetectron::ops::cpu
