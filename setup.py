"""Build and install pydetectron and its compiled ops (`pydetectron._C`).

Install with `pip install --no-build-isolation -e .` so the extension is compiled
against the torch that is already installed (build isolation would fetch another).

The C++ CPU kernels are always built. The CUDA kernels are added when FORCE_CUDA=1
or when torch sees a GPU. CUDA_HOME is found from the environment, from nvcc on
PATH or from /usr/local/cuda*, and the include folders of pip-installed `nvidia-*`
packages (cusparse.h, cublas_v2.h, ...) are added, so a pip CUDA torch plus a bare
nvcc is enough to build.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import site
import sys
import sysconfig

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("lib", "pydetectron", "csrc")
DEFAULT_CUDA_ARCHS = "8.0;8.6;8.9;9.0;10.0;12.0+PTX"


def fail(message: str) -> None:
    """Stop the build with one clear line instead of a deep setuptools traceback."""
    sys.stderr.write(f"pydetectron setup: error: {message}\n")
    raise SystemExit(1)


def find_cuda_home() -> str | None:
    """Locate the CUDA toolkit: $CUDA_HOME/$CUDA_PATH, nvcc on PATH, /usr/local/cuda*."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    # nvcc on PATH may be a wrapper script; ask the real compiler where it lives.
    candidates.extend(toolkit_from_nvcc_wrapper(nvcc))
    candidates.extend(sorted(glob.glob("/usr/local/cuda-*"), reverse=True))
    for home in candidates:
        if home and is_cuda_toolkit(home):
            return home
    return None


def is_cuda_toolkit(home: str) -> bool:
    """A toolkit has bin/nvcc and the runtime headers (a bare nvcc wrapper does not)."""
    return os.path.isfile(os.path.join(home, "bin", "nvcc")) and os.path.isfile(
        os.path.join(home, "include", "cuda_runtime_api.h")
    )


def toolkit_from_nvcc_wrapper(nvcc: str | None) -> list[str]:
    """Toolkit folders named inside a small nvcc wrapper script, if it is one."""
    if not nvcc:
        return []
    try:
        with open(nvcc, encoding="utf-8") as f:
            text = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return []
    return [os.path.dirname(os.path.dirname(p)) for p in re.findall(r"(/\S+/bin/nvcc)\b", text)]


def nvidia_pip_include_dirs() -> list[str]:
    """Include folders shipped by pip `nvidia-*` packages (site-packages/nvidia/**/include)."""
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    dirs: list[str] = []
    for root in sorted(roots):
        for inc in sorted(glob.glob(os.path.join(root, "nvidia", "**", "include"), recursive=True)):
            if os.path.isdir(inc) and inc not in dirs:
                dirs.append(inc)
    return dirs


def want_cuda(torch) -> bool:
    forced = os.environ.get("FORCE_CUDA", "0") not in ("", "0")
    return forced or bool(torch.cuda.is_available())


def make_extensions():
    """Collect csrc sources and describe the `pydetectron._C` extension."""
    try:
        import torch
    except ImportError:
        fail("torch is not installed; run `pip install -r requirements.txt` first, "
             "then `pip install --no-build-isolation -e .`")

    with_cuda = want_cuda(torch)
    if with_cuda:
        if torch.version.cuda is None:
            fail(f"CUDA build requested but torch {torch.__version__} is a CPU-only build")
        cuda_home = find_cuda_home()
        if cuda_home is None:
            fail("CUDA build requested (FORCE_CUDA=1 or a GPU is visible) but no CUDA toolkit "
                 "was found: set CUDA_HOME or put nvcc on PATH")
        os.environ["CUDA_HOME"] = cuda_home
        if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS

    from torch.utils import cpp_extension

    if with_cuda:
        cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]

    sources = sorted(glob.glob(os.path.join(CSRC, "**", "*.cpp"), recursive=True))
    cuda_sources = sorted(glob.glob(os.path.join(CSRC, "**", "*.cu"), recursive=True))
    if not sources:
        fail(f"no C++ sources found under {CSRC}")

    # -fno-trapping-math: FP operations may run unconditionally (no FP exception is ever
    # trapped), which lets GCC vectorise the branch-free loops of the focal-loss kernels.
    extra_compile_args = {"cxx": ["-O3", "-fno-trapping-math"]}
    define_macros = []
    include_dirs = [os.path.join(ROOT, CSRC)]
    if with_cuda:
        sources += cuda_sources
        define_macros.append(("WITH_CUDA", None))
        include_dirs += nvidia_pip_include_dirs()
        extra_compile_args["nvcc"] = [
            "-O3",
            "--expt-relaxed-constexpr",
            "-DCUDA_HAS_FP16=1",
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
        ]
        ext_class = cpp_extension.CUDAExtension
    else:
        ext_class = cpp_extension.CppExtension
    if sys.platform != "win32":
        extra_compile_args["cxx"].append("-fopenmp")
    print(f"pydetectron setup: building _C with CUDA={'yes' if with_cuda else 'no'}"
          f" ({len(sources)} sources)")
    ext = ext_class(
        name="pydetectron._C",
        sources=sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=["-fopenmp"] if sys.platform != "win32" else [],
    )
    return [ext], cpp_extension.BuildExtension.with_options(use_ninja=True)


def main() -> None:
    ext_modules, build_ext = make_extensions()
    setup(
        name="pydetectron",
        version="0.1.0",
        description="Detectron-style object detection for PyTorch with compiled C++/CUDA ops",
        package_dir={"": "lib"},
        packages=find_packages("lib"),
        python_requires=">=3.10",
        ext_modules=ext_modules,
        cmdclass={"build_ext": build_ext},
        zip_safe=False,
    )


if __name__ == "__main__":
    main()
