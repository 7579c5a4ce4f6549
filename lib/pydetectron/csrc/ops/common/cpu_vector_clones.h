// PYDET_VECTOR_CLONES marks a CPU loop function that GCC compiles three times, for
// AVX-512 (x86-64-v4), AVX2 + FMA (x86-64-v3) and the baseline x86-64, picking the best
// one for the machine when the library loads (target_clones, an ifunc). The extension
// itself is built for the baseline, which vectorises only 4 floats at a time. Elsewhere
// (other compilers, architectures or systems) the function is compiled once, as usual.
//
// The loop such a function runs must be inlined into it to be compiled for each target:
// mark the function templates that hold the loops PYDET_ALWAYS_INLINE (small helpers
// inside them are inlined anyway).
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PYDET_VECTOR_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PYDET_VECTOR_CLONES
#endif

#if defined(__GNUC__)
#define PYDET_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define PYDET_ALWAYS_INLINE inline
#endif
