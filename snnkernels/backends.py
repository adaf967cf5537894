"""Which implementation runs an op: availability probes and one resolution rule.

Backends:

- ``"torch"``: the eager reference (``snnkernels.reference``); any device, any float dtype.
- ``"triton"``: the fused Triton kernels; CUDA tensors of fp32 / fp16 / bf16, or CPU tensors when
  Triton's interpreter is on (``TRITON_INTERPRET=1``, for tests).
- ``"auto"``: the fastest available for the tensor at hand; it never changes the numbers (all backends
  compute the same equations in the same precision). ``SNNKERNELS_BACKEND`` replaces ``"auto"`` when set.

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
    "resolve_backend",
]

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "SNNKERNELS_BACKEND"
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

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


def _triton_problem(x: torch.Tensor) -> str | None:
    """Why the Triton backend cannot take ``x``, or None."""
    if not HAS_TRITON:
        return f"Triton is not importable ({TRITON_IMPORT_ERROR!r}); install triton or use backend='torch'"
    if x.dtype not in TRITON_DTYPES:
        return f"the Triton kernels take fp32, fp16 or bf16 input, got {x.dtype}; use backend='torch' for it"
    if x.device.type == "cuda":
        return None
    if x.device.type == "cpu" and triton_interpreter_enabled():
        return None
    return (
        f"the Triton kernels need a CUDA tensor, got one on {x.device} "
        "(set TRITON_INTERPRET=1 before importing to run them on the CPU, slowly, for testing)"
    )


def _requested(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        override = os.environ.get(ENV_VAR, "auto")
        if override not in BACKENDS:
            raise ValueError(f"{ENV_VAR} must be one of {BACKENDS}, got {override!r}")
        return override
    return backend


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The concrete backend (``"torch"`` or ``"triton"``) for an op on ``x``."""
    requested = _requested(backend)
    if requested == "auto":
        return "triton" if x.device.type == "cuda" and _triton_problem(x) is None else "torch"
    if requested == "triton":
        problem = _triton_problem(x)
        if problem is not None:
            raise BackendUnavailableError(f"backend='triton' cannot run: {problem}")
    return requested
