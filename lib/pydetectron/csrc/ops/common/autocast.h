// Autocast support: the ops compute in float32 whatever the autocast dtype, because
// box coordinates and bilinear weights lose too much in half precision. The wrapper
// turns autocast off, casts floating tensors to float32 and calls the op again.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

namespace pydetectron::ops {

inline at::Tensor to_float32(const at::Tensor& t) {
  return t.is_floating_point() && t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble
             ? t.to(at::kFloat)
             : t;
}

// Calls `pydetectron::<name>` with autocast excluded; `Signature` is the kernel type.
template <typename Signature, typename... Args>
decltype(auto) call_without_autocast(const char* name, Args&&... args) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").template typed<Signature>();
  return op.call(std::forward<Args>(args)...);
}

}  // namespace pydetectron::ops
