"""The compiled extension ``snnkernels._C`` (native CPU / CUDA kernels, csrc/).

Loading it is cheap (a shared library; no compilation), so it is tried once when snnkernels is imported,
and the failure is kept, to be shown when the native backend is asked for. The just-in-time build
(``snnkernels._jit``, ninja) runs only when asked: ``SNNKERNELS_JIT=1`` with ``backend="native"``, or a
direct call of ``snnkernels._jit.build()``.
"""
from __future__ import annotations

import os

__all__ = ["native_status", "load_native"]

_STATE: dict[str, object] = {"loaded": False, "error": None, "source": None}


def _register_python_side() -> None:
    # fakes + autograd for the C++-defined ops (same schemas as every other backend)
    from .ops.leaky import register_leaky_autograd

    register_leaky_autograd("snnkernels::leaky_fwd_native", "snnkernels::leaky_bwd_native")


def load_native(allow_jit: bool = False) -> bool:
    """Import the AOT-built extension, or (``allow_jit`` and ``SNNKERNELS_JIT=1``) build it with ninja."""
    if _STATE["loaded"]:
        return True
    try:
        from . import _C  # noqa: F401  (registers torch.ops.snnkernels.leaky_*_native)

        _STATE["source"] = "ahead-of-time build"
    except ImportError as exc:
        _STATE["error"] = exc
        if not (allow_jit and os.environ.get("SNNKERNELS_JIT", "0") == "1"):
            return False
        from ._jit import build

        build()
        _STATE["source"] = "just-in-time build"
    _register_python_side()
    _STATE["loaded"] = True
    _STATE["error"] = None
    return True


def native_status() -> tuple[bool, str]:
    """(available, a sentence saying why not, or where it came from)."""
    if _STATE["loaded"]:
        return True, f"snnkernels._C loaded ({_STATE['source']})"
    return False, (
        f"the native extension snnkernels._C is not built ({_STATE['error']!r}); build it with "
        "`pip install --no-build-isolation -e .` (needs a C++ compiler; CUDA kernels also need CUDA_HOME and "
        "a CUDA build of torch) or set SNNKERNELS_JIT=1 to build it with ninja on first use"
    )
