// Marks small inline helpers that the CPU (g++) and CUDA (nvcc) kernels both use.
#pragma once

#if defined(__CUDACC__)
#define PYDET_HOST_DEVICE __host__ __device__
#else
#define PYDET_HOST_DEVICE
#endif

// Forces a small formula inline into the loop that calls it: a CPU loop vectorises only
// when no call is left in its body.
#if defined(__CUDACC__)
#define PYDET_FORCE_INLINE __forceinline__
#elif defined(__GNUC__)
#define PYDET_FORCE_INLINE __attribute__((always_inline)) inline
#else
#define PYDET_FORCE_INLINE inline
#endif
