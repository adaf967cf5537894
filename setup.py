"""Build script. Metadata lives in pyproject.toml.

The package is pure Python (the Triton kernels compile at run time), so a plain install works on any
machine. Ahead of time it also builds the native extension ``snnkernels._C`` from ``csrc/`` when it can:

- the CPU part wherever torch is importable at build time and a C++ compiler works
  (install with ``pip install --no-build-isolation -e .`` so the build sees your torch);
- the CUDA part too when torch is a CUDA build and a CUDA toolkit is found (``CUDA_HOME``), for the
  architectures in ``TORCH_CUDA_ARCH_LIST`` (default "8.0;9.0"); no GPU is needed to build.

Environment: ``SNNKERNELS_BUILD_NATIVE=0`` skips the extension, ``=1`` makes a failed build an error
(default: a failed or impossible build prints one message and installs the pure-Python package).
``SNNKERNELS_BUILD_CUDA=0`` builds the CPU part only. ``MAX_JOBS`` and ``DEBUG=1`` are honoured.
"""
from __future__ import annotations

import importlib.util
import os
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
BUILD_NATIVE = os.environ.get("SNNKERNELS_BUILD_NATIVE", "auto")


def _say(message: str) -> None:
    print(f"snnkernels setup: {message}", file=sys.stderr)


def _load_source_lists():
    """snnkernels/_native_sources.py, loaded by path: the package itself must not be imported here."""
    spec = importlib.util.spec_from_file_location("_native_sources", os.path.join(ROOT, "snnkernels", "_native_sources.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCES = _load_source_lists()


def native_extensions() -> tuple[list, dict]:
    if BUILD_NATIVE == "0":
        _say("SNNKERNELS_BUILD_NATIVE=0: pure-Python install (Triton / eager backends only)")
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        if BUILD_NATIVE == "1":
            raise
        _say("torch is not importable at build time (use --no-build-isolation): no native extension built")
        return [], {}

    csrc = os.path.join(ROOT, "csrc")
    cpu_sources = [os.path.relpath(p, ROOT) for p in SOURCES.cpu_sources(csrc)]
    cuda_sources = [os.path.relpath(p, ROOT) for p in SOURCES.cuda_sources(csrc)]
    if not cpu_sources:
        return [], {}
    debug = os.environ.get("DEBUG", "0") == "1"
    cxx = ["-O0", "-g"] + SOURCES.CXX_FLAGS[1:] if debug else list(SOURCES.CXX_FLAGS)
    include_dirs = [os.path.join(ROOT, "csrc", "include"), os.path.join(ROOT, "csrc")]
    with_cuda = (
        os.environ.get("SNNKERNELS_BUILD_CUDA", "1") != "0"
        and torch.version.cuda is not None
        and cpp_extension.CUDA_HOME is not None
        and bool(cuda_sources)
    )
    if with_cuda:
        # machine code for A100 / H100, plus sm_90 PTX that the driver compiles for newer GPUs (without it,
        # backend="native" fails there with "no kernel image")
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
        nvcc = ["-O0", "-G"] + SOURCES.NVCC_FLAGS[1:-1] if debug else list(SOURCES.NVCC_FLAGS)
        ext = cpp_extension.CUDAExtension(
            "snnkernels._C", cpu_sources + cuda_sources, include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx + ["-DSNNKERNELS_WITH_CUDA=1"], "nvcc": nvcc + ["-DSNNKERNELS_WITH_CUDA=1"]}, extra_link_args=["-fopenmp"],
        )
        _say(f"building snnkernels._C with CPU and CUDA kernels for {os.environ['TORCH_CUDA_ARCH_LIST']}")
    else:
        ext = cpp_extension.CppExtension(
            "snnkernels._C", cpu_sources, include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"],
        )
        _say("building snnkernels._C with CPU kernels only (no CUDA torch build or no CUDA_HOME)")
    return [ext], {"build_ext": _forgiving_build_ext(cpp_extension.BuildExtension)}


def _forgiving_build_ext(base):
    """A failed native build leaves a working pure-Python install (unless SNNKERNELS_BUILD_NATIVE=1)."""

    class BuildExt(base):
        def run(self):
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any compiler failure
                if BUILD_NATIVE == "1":
                    raise
                _say(f"native extension build failed ({exc}); installing without it (Triton / eager only)")

    return BuildExt.with_options(use_ninja=True)


ext_modules, cmdclass = native_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
