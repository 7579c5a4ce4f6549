// Marks small inline helpers that the CPU (g++) and CUDA (nvcc) kernels both use.
#pragma once

#if defined(__CUDACC__)
#define PYDET_HOST_DEVICE __host__ __device__
#else
#define PYDET_HOST_DEVICE
#endif
