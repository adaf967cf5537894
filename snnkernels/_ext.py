"""The compiled extension ``snnkernels._C`` (native CPU / CUDA kernels, csrc/).

Importing ``snnkernels`` does not load it. It is loaded lazily (``load_native``), on first need: when a
backend resolution considers ``"native"`` (an explicit ``backend="native"``, or ``"auto"`` reaching it in
``backends.AUTO_ORDER``, e.g. for a CPU tensor) or when ``python -m snnkernels`` reports what runs. Loading is
cheap (a shared library; no compilation). A failed import is not cached: a later probe tries again, and the
last error is kept for ``native_status()``'s message, shown when the native backend is asked for. The just-in-time build
(``snnkernels._jit``, ninja) runs only when asked: ``SNNKERNELS_JIT=1`` with the native backend requested
(explicitly or by ``"auto"``), or a direct call of ``snnkernels._jit.build()``. A JIT build that fails is
remembered and not retried in the same process: the native backend is then unavailable with that reason
(``"auto"`` moves on to the next backend, an explicit ``"native"`` raises it).
"""

from __future__ import annotations

import glob
import os

import torch

from ._build_log import error_summary

__all__ = ["jit_requested", "load_native", "native_status"]

_STATE: dict[str, object] = {"loaded": False, "error": None, "source": None, "jit_error": None}
_BUILD_HINT = (
    "build it with `pip install --no-build-isolation -e .` (needs a C++ compiler; CUDA kernels also need "
    "CUDA_HOME and a CUDA build of torch)"
)
_JIT_HINT = " or set SNNKERNELS_JIT=1 to build it with ninja on first use"


def jit_requested() -> bool:
    return os.environ.get("SNNKERNELS_JIT", "0") == "1"


def _register_python_side() -> None:
    # fakes + autograd for the C++-defined ops (same schemas as every other backend)
    from .ops.leaky import register_leaky_autograd
    from .ops.spike_pack import register_native_fakes

    register_leaky_autograd("snnkernels::leaky_fwd_native", "snnkernels::leaky_bwd_native")
    register_native_fakes()


def _jit_build() -> bool:
    """The JIT build; its failure is kept (and returned as False), never raised."""
    from ._jit import build

    try:
        build()
    except Exception as exc:  # noqa: BLE001 - no ninja, no compiler, a compile error, a stale library
        _STATE["jit_error"] = exc
        return False
    return True


def load_native(allow_jit: bool = False) -> bool:
    """Import the AOT-built extension, or (``allow_jit`` and ``SNNKERNELS_JIT=1``) build it with ninja.
    False when neither works; ``native_status()`` says why. Never raises."""
    if _STATE["loaded"]:
        return True
    if _STATE["jit_error"] is not None:
        return False
    try:
        from . import _C  # noqa: F401  (registers torch.ops.snnkernels.leaky_*_native)

        _STATE["source"] = "ahead-of-time build"
    except ImportError as exc:
        _STATE["error"] = exc
        if not (allow_jit and jit_requested()) or not _jit_build():
            return False
        _STATE["source"] = "just-in-time build"
    _register_python_side()
    _STATE["loaded"] = True
    _STATE["error"] = None
    return True


def _built_library() -> str | None:
    found = glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_C*.so"))
    return found[0] if found else None


def _not_loaded_reason() -> str:
    error = _STATE["error"]
    library = _built_library()
    if library is not None and error is not None and "undefined symbol" in str(error):
        return (
            f"{os.path.basename(library)} does not load with torch {torch.__version__} ({error!r}): it was built "
            "against another torch; rebuild it with `pip install --no-build-isolation -e .`"
        )
    hint = _BUILD_HINT if jit_requested() else _BUILD_HINT + _JIT_HINT
    return f"the native extension snnkernels._C is not built ({error!r}); {hint}"


def native_status() -> tuple[bool, str]:
    """(available, a sentence saying why not, or where it came from)."""
    if _STATE["loaded"]:
        return True, f"snnkernels._C loaded ({_STATE['source']})"
    reason = _not_loaded_reason()
    jit_error = _STATE["jit_error"]
    if jit_error is not None:
        lines = "; ".join(error_summary(str(jit_error), limit=3))
        reason += (
            f"; the just-in-time build (SNNKERNELS_JIT=1) failed and is not retried in this process: "
            f"{type(jit_error).__name__}: {lines}"
        )
    return False, reason
