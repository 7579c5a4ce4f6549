// CPU kernels of pydetectron::softmax_focal_loss and its backward.
//
// Rows run in parallel; each row is read once for its largest logit and once for the
// exponentials (vectorised loops; float32 uses cpu_fast_math.h and is compiled for
// AVX-512, AVX2 and the baseline, cpu_vector_clones.h), and the row's loss or gradient
// follows from softmax_focal_loss_math.h. float16 and bfloat16 compute in
// float32. The labels are checked first, which also counts the rows that 'mean' divides
// by. The reductions sum fixed blocks of rows and add the block sums in double, in
// order, so the result does not depend on the number of threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/common/cpu_fast_math.h"
#include "ops/common/cpu_vector_clones.h"
#include "ops/common/focal_checks.h"
#include "ops/common/reduced_float.h"
#include "ops/softmax_focal_loss/softmax_focal_loss_math.h"

namespace pydetectron::ops::cpu {
namespace {

template <typename T>
using CpuMath = std::conditional_t<std::is_same_v<T, float>, FastMath, PreciseMath>;

constexpr int64_t kRowBlock = 256;  // rows per work item of the reductions

// Every label is -1 or a class in [0, classes); returns the number that are not -1.
int64_t check_labels(const int64_t* labels, int64_t rows, int64_t classes, const char* op) {
  int64_t valid = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t y = labels[i];
    TORCH_CHECK_VALUE(y >= -1 && y < classes, op, ": labels[", i, "] = ", y,
                      " is neither a class in [0, ", classes, ") nor -1 (ignored)");
    valid += y >= 0;
  }
  return valid;
}

template <typename T>
PYDET_ALWAYS_INLINE T row_max(const T* logits, int64_t classes) {
  T largest = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : largest)
  for (int64_t j = 0; j < classes; ++j) largest = logits[j] > largest ? logits[j] : largest;
  return largest;
}

// The focal terms of a row that is not ignored, for one power policy P (focal_math.h);
// the exponentials exp(l_j - max) go to `exps` when given.
template <typename T, typename P>
PYDET_ALWAYS_INLINE SoftmaxFocalTerms<T> row_terms(const T* logits, int64_t classes,
                                                   int64_t label, T alpha, const P& power,
                                                   T* exps) {
  using M = CpuMath<T>;
  const T largest = row_max(logits, classes);
  T others = 0;
  if (exps != nullptr) {
#pragma omp simd reduction(+ : others)
    for (int64_t j = 0; j < classes; ++j) {
      const T e = M::exp(logits[j] - largest);
      exps[j] = e;
      others += j == label ? T(0) : e;
    }
  } else {
#pragma omp simd reduction(+ : others)
    for (int64_t j = 0; j < classes; ++j) {
      const T e = M::exp(logits[j] - largest);
      others += j == label ? T(0) : e;
    }
  }
  const T e_label = M::exp(logits[label] - largest);
  return softmax_focal_terms<M>(logits[label], largest, e_label, others,
                                softmax_focal_weight(label, alpha), power);
}

// Losses of rows [begin, end) into out[i], or (out == null) their sum.
template <typename T, typename P>
PYDET_ALWAYS_INLINE double rows_loss(const T* logits, const int64_t* labels, int64_t begin,
                                     int64_t end, int64_t classes, T alpha, const P& power,
                                     T* out) {
  double total = 0;
  for (int64_t i = begin; i < end; ++i) {
    const T loss = labels[i] < 0 ? T(0)
                                 : row_terms(logits + i * classes, classes, labels[i], alpha,
                                             power, static_cast<T*>(nullptr))
                                       .loss;
    if (out != nullptr) out[i] = loss;
    total += loss;
  }
  return total;
}

// Gradient rows [begin, end); `grad` holds one gradient per row, or is null and
// `grad_value` applies to all.
template <typename T, typename P>
PYDET_ALWAYS_INLINE void rows_grad(const T* grad, T grad_value, const T* logits,
                                   const int64_t* labels, int64_t begin, int64_t end,
                                   int64_t classes, T alpha, const P& power, T* out) {
  for (int64_t i = begin; i < end; ++i) {
    T* row = out + i * classes;
    const int64_t label = labels[i];
    if (label < 0) {
      std::fill(row, row + classes, T(0));
      continue;
    }
    const T g = grad != nullptr ? grad[i] : grad_value;
    // The exponentials go straight into the output row, then become gradients.
    const SoftmaxFocalTerms<T> terms =
        row_terms(logits + i * classes, classes, label, alpha, power, row);
    const T other = -g * terms.other_scale;
#pragma omp simd
    for (int64_t j = 0; j < classes; ++j) row[j] *= other;
    row[label] = g * terms.grad_label;
  }
}

// The same for a gamma: gamma = 2 gets the exact square.
template <typename T>
PYDET_ALWAYS_INLINE double loss_range(const T* logits, const int64_t* labels, int64_t begin,
                                      int64_t end, int64_t classes, T alpha, T gamma, T* out) {
  if (gamma == T(2)) {
    return rows_loss(logits, labels, begin, end, classes, alpha, SquarePower<T>{}, out);
  }
  return rows_loss(logits, labels, begin, end, classes, alpha,
                   GeneralPower<CpuMath<T>, T>::of(gamma), out);
}

template <typename T>
PYDET_ALWAYS_INLINE void grad_range(const T* grad, T grad_value, const T* logits,
                                    const int64_t* labels, int64_t begin, int64_t end,
                                    int64_t classes, T alpha, T gamma, T* out) {
  if (gamma == T(2)) {
    rows_grad(grad, grad_value, logits, labels, begin, end, classes, alpha, SquarePower<T>{},
              out);
  } else {
    rows_grad(grad, grad_value, logits, labels, begin, end, classes, alpha,
              GeneralPower<CpuMath<T>, T>::of(gamma), out);
  }
}

// The float32 instances, compiled for each vector width (cpu_vector_clones.h).
PYDET_VECTOR_CLONES double loss_range_f32(const float* logits, const int64_t* labels,
                                          int64_t begin, int64_t end, int64_t classes,
                                          float alpha, float gamma, float* out) {
  return loss_range(logits, labels, begin, end, classes, alpha, gamma, out);
}

PYDET_VECTOR_CLONES void grad_range_f32(const float* grad, float grad_value, const float* logits,
                                        const int64_t* labels, int64_t begin, int64_t end,
                                        int64_t classes, float alpha, float gamma, float* out) {
  grad_range(grad, grad_value, logits, labels, begin, end, classes, alpha, gamma, out);
}

template <typename T>
double run_loss_range(const T* logits, const int64_t* labels, int64_t begin, int64_t end,
                      int64_t classes, T alpha, T gamma, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    return loss_range_f32(logits, labels, begin, end, classes, alpha, gamma, out);
  } else {
    return loss_range(logits, labels, begin, end, classes, alpha, gamma, out);
  }
}

template <typename T>
void run_grad_range(const T* grad, T grad_value, const T* logits, const int64_t* labels,
                    int64_t begin, int64_t end, int64_t classes, T alpha, T gamma, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    grad_range_f32(grad, grad_value, logits, labels, begin, end, classes, alpha, gamma, out);
  } else {
    grad_range(grad, grad_value, logits, labels, begin, end, classes, alpha, gamma, out);
  }
}

at::Tensor softmax_focal_loss_cpu(const at::Tensor& logits, const at::Tensor& labels,
                                  double alpha, double gamma, c10::string_view reduction_name) {
  const char* op = "softmax_focal_loss";
  check_softmax_focal_inputs(logits, labels, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  if (is_reduced_float(logits)) {
    return softmax_focal_loss_cpu(logits.to(at::kFloat), labels, alpha, gamma, reduction_name)
        .to(logits.scalar_type());
  }
  const at::Tensor l = logits.contiguous(), y = labels.contiguous();
  const int64_t rows = l.size(0), classes = l.size(1);
  const int64_t* yd = y.const_data_ptr<int64_t>();
  const int64_t valid = check_labels(yd, rows, classes, op);
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES(l.scalar_type(), "softmax_focal_loss_cpu", [&] {
    using T = scalar_t;
    const T* ld = l.const_data_ptr<T>();
    const T a = static_cast<T>(alpha), g = static_cast<T>(gamma);
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(classes, 1));
    if (reduction == Reduction::kNone) {
      result = at::empty({rows}, l.options());
      T* out = result.mutable_data_ptr<T>();
      at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        run_loss_range(ld, yd, begin, end, classes, a, g, out);
      });
      return;
    }
    const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
    std::vector<double> partial(blocks);
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        partial[b] = run_loss_range(ld, yd, b * kRowBlock, std::min(rows, (b + 1) * kRowBlock),
                                    classes, a, g, static_cast<T*>(nullptr));
      }
    });
    double total = 0;
    for (const double v : partial) total += v;
    if (reduction == Reduction::kMean) total /= static_cast<double>(valid);  // none: NaN
    result = at::scalar_tensor(total, l.options());
  });
  return result;
}

at::Tensor softmax_focal_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& logits,
                                           const at::Tensor& labels, double alpha, double gamma,
                                           c10::string_view reduction_name) {
  const char* op = "softmax_focal_loss_backward";
  check_softmax_focal_inputs(logits, labels, op);
  check_focal_settings(alpha, gamma, op);
  const Reduction reduction = parse_reduction(reduction_name, op);
  check_focal_grad(grad, reduction, {logits.size(0)}, logits, op);
  if (is_reduced_float(logits)) {
    return softmax_focal_loss_backward_cpu(grad.to(at::kFloat), logits.to(at::kFloat), labels,
                                           alpha, gamma, reduction_name)
        .to(logits.scalar_type());
  }
  const at::Tensor l = logits.contiguous(), y = labels.contiguous(), gc = grad.contiguous();
  const int64_t rows = l.size(0), classes = l.size(1);
  const int64_t* yd = y.const_data_ptr<int64_t>();
  const int64_t valid = check_labels(yd, rows, classes, op);
  at::Tensor grad_logits = at::empty({rows, classes}, l.options());
  if (grad_logits.numel() == 0) return grad_logits;
  AT_DISPATCH_FLOATING_TYPES(l.scalar_type(), "softmax_focal_loss_backward_cpu", [&] {
    using T = scalar_t;
    const T* ld = l.const_data_ptr<T>();
    const T* gd = gc.const_data_ptr<T>();
    T* out = grad_logits.mutable_data_ptr<T>();
    const T a = static_cast<T>(alpha), gm = static_cast<T>(gamma);
    const T* per_row = reduction == Reduction::kNone ? gd : nullptr;
    double scale = 0;
    if (reduction != Reduction::kNone) {
      scale = static_cast<double>(gd[0]);
      if (reduction == Reduction::kMean) scale /= static_cast<double>(valid);
    }
    const int64_t grain = std::max<int64_t>(1, 4096 / classes);
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      run_grad_range(per_row, static_cast<T>(scale), ld, yd, begin, end, classes, a, gm, out);
    });
  });
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(pydetectron, CPU, m) {
  m.impl("softmax_focal_loss", TORCH_FN(softmax_focal_loss_cpu));
  m.impl("softmax_focal_loss_backward", TORCH_FN(softmax_focal_loss_backward_cpu));
}

}  // namespace pydetectron::ops::cpu
