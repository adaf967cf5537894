"""Which implementation runs an op: availability probes and one resolution rule.

Backends (all compute the same equations in the same precision):

- ``"torch"``: the eager reference (``snnkernels.reference``); any device, any float dtype.
- ``"triton"``: the fused Triton kernels; CUDA tensors of fp32 / fp16 / bf16, or CPU tensors when
  Triton's interpreter is on (``TRITON_INTERPRET=1``, for tests).
- ``"native"``: the C++ extension ``snnkernels._C`` (csrc/): CPU tensors, and CUDA tensors when it was
  built with CUDA.
- ``"cupy"``: the same CUDA source files compiled at run time by CuPy's NVRTC (no build step).
- ``"auto"``: the fastest available for the tensor at hand (``AUTO_ORDER``); it never changes the numbers.
  ``SNNKERNELS_BACKEND`` replaces ``"auto"`` when set.

The attention ops (TCJA, T-XA, DTA) have Triton kernels only: for them "auto" is "triton" on CUDA and
"torch" elsewhere, an explicit "native" / "cupy" raises, and a ``SNNKERNELS_BACKEND`` of "native" or
"cupy" (meant for the neurons) leaves them on "auto".

An explicit backend that cannot run raises ``BackendUnavailableError`` naming the reason (with the
original import error where there is one): there is no silent fallback.
"""

from __future__ import annotations

import os

import torch

__all__ = [
    "BACKENDS",
    "HAS_TRITON",
    "TRITON_IMPORT_ERROR",
    "BackendUnavailableError",
    "triton_interpreter_enabled",
    "backend_problem",
    "resolve_backend",
    "resolve_triton_op_backend",
    "check_backend_name",
]

BACKENDS = ("auto", "torch", "triton", "native", "cupy")
ENV_VAR = "SNNKERNELS_BACKEND"
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Preference of "auto" per device type, fastest first; "torch" closes every list. The CUDA order puts
# Triton first until the GPU benchmark (bench/results) ranks the native kernels.
AUTO_ORDER = {"cuda": ("triton", "native"), "cpu": ("native",)}

try:
    import triton  # noqa: F401

    HAS_TRITON = True
    TRITON_IMPORT_ERROR: BaseException | None = None
except ImportError as exc:  # pragma: no cover - depends on the install
    HAS_TRITON = False
    TRITON_IMPORT_ERROR = exc


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run this call."""


def triton_interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _dtype_problem(dtype: torch.dtype, name: str) -> str | None:
    if dtype not in KERNEL_DTYPES:
        return f"the {name} kernels take fp32, fp16 or bf16 input, got {dtype}; use backend='torch' for it"
    return None


def _triton_problem(device: str, dtype: torch.dtype) -> str | None:
    if not HAS_TRITON:
        return f"Triton is not importable ({TRITON_IMPORT_ERROR!r}); install triton or use backend='torch'"
    if _dtype_problem(dtype, "Triton"):
        return _dtype_problem(dtype, "Triton")
    if device == "cuda" or (device == "cpu" and triton_interpreter_enabled()):
        return None
    return (
        f"the Triton kernels need a CUDA tensor, got one on {device} "
        "(set TRITON_INTERPRET=1 before importing to run them on the CPU, slowly, for testing)"
    )


def _native_problem(device: str, dtype: torch.dtype) -> str | None:
    from . import _ext

    if not _ext.load_native(allow_jit=True):
        return _ext.native_status()[1]
    if _dtype_problem(dtype, "native"):
        return _dtype_problem(dtype, "native")
    if device not in ("cpu", "cuda"):
        return f"the native kernels run on CPU and CUDA tensors, got one on {device}"
    if not torch._C._dispatch_has_kernel_for_dispatch_key("snnkernels::leaky_fwd_native", device.upper()):
        return (
            f"snnkernels._C was built without {device.upper()} kernels (a CUDA build needs a CUDA torch and "
            "CUDA_HOME at build time); backend='triton' or 'cupy' run on CUDA without it"
        )
    return None


def _cupy_problem(device: str, dtype: torch.dtype) -> str | None:
    from .ops import leaky_cupy

    if _dtype_problem(dtype, "CuPy"):
        return _dtype_problem(dtype, "CuPy")
    if device != "cuda":
        return f"the CuPy path runs CUDA kernels and needs a CUDA tensor, got one on {device}"
    return leaky_cupy.availability_problem()


_PROBES = {"triton": _triton_problem, "native": _native_problem, "cupy": _cupy_problem}


def problem_on(backend: str, device: str, dtype: torch.dtype) -> str | None:
    """Why ``backend`` cannot run an op on ``device`` / ``dtype``, or None when it can. A probe that fails is a
    reason too: "auto" moves past it, an explicit request raises it."""
    if backend == "torch":
        return None
    probe = _PROBES[backend]
    try:
        return probe(device, dtype)
    except Exception as exc:  # noqa: BLE001 - whatever a broken install raises
        return f"checking the {backend} backend failed: {type(exc).__name__}: {exc}"


def backend_problem(backend: str, x: torch.Tensor) -> str | None:
    """Why ``backend`` cannot run an op on ``x``, or None when it can."""
    return problem_on(backend, x.device.type, x.dtype)


def _requested(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        override = os.environ.get(ENV_VAR, "auto")
        if override not in BACKENDS:
            raise ValueError(f"{ENV_VAR} must be one of {BACKENDS}, got {override!r}")
        return override
    return backend


def _resolve(backend: str, device: str, dtype: torch.dtype) -> str:
    requested = _requested(backend)
    if requested == "auto":
        for candidate in AUTO_ORDER.get(device, ()):
            if problem_on(candidate, device, dtype) is None:
                return candidate
        return "torch"
    problem = problem_on(requested, device, dtype)
    if problem is not None:
        raise BackendUnavailableError(f"backend={requested!r} cannot run: {problem}")
    return requested


# Depends only on hashable metadata and the environment, so torch.compile evaluates it once while tracing
# instead of tracing into the probes (imports, dispatcher queries). This is what
# torch.compiler.assume_constant_result does; setting its mark directly keeps torch._dynamo (seconds to
# import) out of `import snnkernels`.
_resolve._dynamo_marked_constant = True  # type: ignore[attr-defined]


def native_packing_problem() -> str | None:
    """Why the native spike packing (the extension's C++ CPU kernels) cannot run here, or None when it can."""
    return problem_on("native", "cpu", torch.float32)


native_packing_problem._dynamo_marked_constant = True  # type: ignore[attr-defined]  # as _resolve's


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The concrete backend for an op on ``x``: "torch", "triton", "native" or "cupy"."""
    return _resolve(backend, x.device.type, x.dtype)


def check_backend_name(backend: str, owner: str, available: tuple[str, ...] = ("auto", "torch", "triton")) -> str:
    """``backend`` if it is a backend name that ``owner`` implements; a clear error otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"{owner}: backend must be one of {BACKENDS}, got {backend!r}")
    if backend not in available:
        raise BackendUnavailableError(
            f"{owner}: backend={backend!r} cannot run: {owner} has no {backend} kernels; it runs on "
            f"{' / '.join(repr(b) for b in available)}"
        )
    return backend


def _resolve_triton_op(backend: str, device: str, dtype: torch.dtype) -> str:
    requested = _requested(backend)
    if requested in ("native", "cupy"):  # only reachable through SNNKERNELS_BACKEND with backend="auto"
        requested = "auto"
    if requested == "auto":
        return "triton" if device == "cuda" and _triton_problem(device, dtype) is None else "torch"
    problem = None if requested == "torch" else _triton_problem(device, dtype)
    if problem is not None:
        raise BackendUnavailableError(f"backend={requested!r} cannot run: {problem}")
    return requested


_resolve_triton_op._dynamo_marked_constant = True  # type: ignore[attr-defined]


def resolve_triton_op_backend(backend: str, x: torch.Tensor, owner: str) -> str:
    """Either "torch" or "triton" for an op that has Triton kernels only (see the module docstring)."""
    check_backend_name(backend, owner)
    return _resolve_triton_op(backend, x.device.type, x.dtype)
