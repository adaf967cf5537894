"""Just-in-time build of the native extension with ninja (``torch.utils.cpp_extension.load``).

A developer convenience: used only when asked (``SNNKERNELS_JIT=1`` and the native backend requested, or a
direct call), cached by torch under ``TORCH_EXTENSIONS_DIR``, never at import. It compiles the same
``csrc/`` files as setup.py, so the ops it registers are the same.
"""

from __future__ import annotations

import torch

from . import _native_sources as src


def build(verbose: bool = False) -> None:
    from torch.utils import cpp_extension

    root = src.csrc_dir()
    sources = src.cpu_sources(root)
    extra = {"extra_cflags": src.CXX_FLAGS, "extra_ldflags": ["-fopenmp"]}
    if torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None:
        sources += src.cuda_sources(root)
        extra.update(extra_cuda_cflags=src.NVCC_FLAGS + ["-DSNNKERNELS_WITH_CUDA=1"])
        extra["extra_cflags"] = extra["extra_cflags"] + ["-DSNNKERNELS_WITH_CUDA=1"]
    cpp_extension.load(
        name="snnkernels_jit",
        sources=sources,
        extra_include_paths=[f"{root}/include", root],
        is_python_module=False,
        verbose=verbose,
        **extra,
    )
