// Python module `pydetectron._C`. Importing it loads the shared library, which
// registers every op of the `pydetectron` namespace with the torch dispatcher
// (see ops/*/). The module itself only reports how it was built.
#include <torch/extension.h>

#include <string>

#ifdef WITH_CUDA
int pydetectron_cuda_runtime_version();  // cuda_info.cu
#endif

namespace {

std::string build_info() {
  std::string info = "torch " + std::string(TORCH_VERSION) + ", cpu";
#ifdef _OPENMP
  info += "+openmp";
#endif
#ifdef WITH_CUDA
  const int v = pydetectron_cuda_runtime_version();
  info += ", cuda " + std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
#else
  info += ", no cuda";
#endif
  return info;
}

bool compiled_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "pydetectron compiled ops (registered under torch.ops.pydetectron)";
  m.def("build_info", &build_info, "How this extension was built");
  m.def("compiled_with_cuda", &compiled_with_cuda, "True when the CUDA kernels are compiled in");
}
