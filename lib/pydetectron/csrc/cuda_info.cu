// CUDA runtime version the extension was compiled against (CUDART_VERSION).
#include <cuda_runtime_api.h>

int pydetectron_cuda_runtime_version() { return CUDART_VERSION; }
