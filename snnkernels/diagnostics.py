"""What will run here: versions, which backends this machine can run (and why not), and which backend each
snnkernels layer of a model resolves to. ``python -m snnkernels`` prints the same report.

Every answer comes from the functions the ops themselves call (``snnkernels.backends``): the neurons
resolve with ``resolve_backend``, the Triton-only layers (attention, STAA-LIF, TCSA-LIF) with
``resolve_triton_op_backend``, for a tensor on the model's device and dtype. This resolves without running
the model; ``snnkernels.models.resolved_backends(model, x)`` runs one forward and also names fused pairs.
As with the ops, asking about the native backend under ``SNNKERNELS_JIT=1`` builds it when it is not built.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TextIO

import torch
from torch import nn

from . import _ext, backends
from ._version import __version__

__all__ = ["LayerBackend", "available_backends", "layer_backends", "report", "versions"]

KERNEL_BACKENDS = ("torch", "triton", "native", "cupy")
ENV_VARS = ("SNNKERNELS_BACKEND", "SNNKERNELS_JIT", "TRITON_INTERPRET", "SNNKERNELS_BUILD_NATIVE", "CXX", "CUDA_HOME")


@dataclass(frozen=True)
class LayerBackend:
    """One snnkernels layer of a model: its name, class, requested backend, the backend it resolves to (None
    when the request cannot run) and why it resolves that way (None when the requested backend runs)."""

    name: str
    kind: str
    requested: str
    resolved: str | None
    reason: str | None


def _tool_version(tool: str) -> str:
    """``tool --version`` in one line (nvcc's 'release' line), or why there is none."""
    path = shutil.which(tool)
    if path is None:
        return f"{tool}: not found"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path}: not usable ({exc})"
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not lines:
        return f"{path}: not usable (exit status {out.returncode})"
    return f"{path}: {([line for line in lines if 'release' in line] or lines)[0]}"


def versions() -> dict[str, str]:
    """snnkernels, Python, torch, Triton, CUDA, the compilers and the native extension, as this process sees
    them."""
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    found = {
        "snnkernels": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "torch": f"{torch.__version__} ({build})",
        "triton": (
            importlib.metadata.version("triton")
            if backends.HAS_TRITON
            else f"not importable ({backends.TRITON_IMPORT_ERROR!r})"
        ),
    }
    if torch.cuda.is_available():
        found["CUDA devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        found["CUDA devices"] = "none (torch.cuda.is_available() is False)"
    found["C++ compiler"] = _tool_version(os.environ.get("CXX", "c++").split()[0])
    found["nvcc"] = _tool_version("nvcc")
    _ext.load_native()  # cheap: imports the built library, never builds
    found["native extension"] = _ext.native_status()[1]
    return found


def _devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def available_backends(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, str | None]:
    """For each backend, None when it can run an op on a ``device`` / ``dtype`` tensor here, else the reason."""
    probe = torch.empty(0, device=device, dtype=dtype)
    return {name: backends.backend_problem(name, probe) for name in KERNEL_BACKENDS}


def _probe_of(model: nn.Module) -> torch.Tensor:
    """An empty tensor on the device and in the floating dtype of the model's first parameter or buffer."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return torch.empty(0, device=tensor.device, dtype=tensor.dtype)
    return torch.empty(0)


def _resolver(module: nn.Module):
    """The resolution function the module's op calls, or None for modules that are not snnkernels layers
    (a network's own ``backend`` attribute only passes the switch to its layers)."""
    from .nn.neuron import SpikingNeuron

    if isinstance(module, SpikingNeuron):
        return lambda x: backends.resolve_backend(module.backend, x), backends.AUTO_ORDER
    if type(module).__module__.startswith("snnkernels.nn."):
        owner = type(module).__name__
        return lambda x: backends.resolve_triton_op_backend(module.backend, x, owner), {
            "cpu": ("triton",),
            "cuda": ("triton",),
        }
    return None


def layer_backends(model: nn.Module, x: torch.Tensor | None = None) -> list[LayerBackend]:
    """The backend each snnkernels layer of ``model`` resolves to for input like ``x`` (default: an empty
    tensor on the model's device in its dtype), in ``model.named_modules()`` order, without running it."""
    probe = _probe_of(model) if x is None else x
    rows = []
    for name, module in model.named_modules():
        if not isinstance(getattr(module, "backend", None), str):
            continue
        found = _resolver(module)
        if found is None:
            continue
        resolve, order = found
        try:
            resolved, reason = resolve(probe), None
        except (backends.BackendUnavailableError, ValueError) as exc:  # ValueError: a bad SNNKERNELS_BACKEND
            resolved, reason = None, str(exc)
        if resolved is not None and module.backend == "auto":
            reason = _why_auto(resolved, order.get(probe.device.type, ()), probe)
        rows.append(LayerBackend(name or "(model)", type(module).__name__, module.backend, resolved, reason))
    return rows


def _why_auto(resolved: str, order: tuple[str, ...], probe: torch.Tensor) -> str | None:
    """Why "auto" did not pick a faster backend: the problems of those ahead of ``resolved`` in ``order``."""
    override = os.environ.get(backends.ENV_VAR, "auto")
    if override != "auto":
        return f"{backends.ENV_VAR}={override} replaces 'auto'"
    ahead = order[: order.index(resolved)] if resolved in order else order
    problems = [f"not {name}: {problem}" for name in ahead if (problem := backends.backend_problem(name, probe))]
    return "; ".join(problems) or None


def _table(rows: list[LayerBackend]) -> list[str]:
    width = max([len(r.name) for r in rows] + [5])
    kind = max([len(r.kind) for r in rows] + [5])
    lines = [f"  {'layer':<{width}}  {'class':<{kind}}  requested  resolves to"]
    for r in rows:
        lines.append(f"  {r.name:<{width}}  {r.kind:<{kind}}  {r.requested:<9}  {r.resolved or 'CANNOT RUN'}")
    reasons = sorted({r.reason for r in rows if r.reason})
    if reasons:
        lines += ["  why:"] + [f"    - {reason}" for reason in reasons]
    return lines


def report(model: nn.Module | None = None, x: torch.Tensor | None = None, file: TextIO | None = None) -> str:
    """Prints (to ``file``, default stdout) and returns the report: versions, the backends available on each
    device here with the reason for each one that is not, what ``backend="auto"`` picks, and, given
    ``model``, the backend each of its snnkernels layers resolves to (see ``layer_backends``)."""
    lines = ["snnkernels diagnostics", "", "versions:"]
    lines += [f"  {key}: {value}" for key, value in versions().items()]
    env = {name: os.environ[name] for name in ENV_VARS if name in os.environ}
    lines += ["", "environment: " + (", ".join(f"{k}={v}" for k, v in env.items()) or "none of " + ", ".join(ENV_VARS))]
    for device in _devices():
        probe = torch.empty(0, device=device)
        lines += ["", f"backends for {device} tensors (fp32):"]
        for name, problem in available_backends(device).items():
            lines.append(f"  {name:<7} {'available' if problem is None else 'unavailable: ' + problem}")
        # the lambdas run at once inside _auto; binding probe keeps them tied to this iteration's device
        neurons = _auto(lambda probe=probe: backends.resolve_backend("auto", probe))
        attention = _auto(lambda probe=probe: backends.resolve_triton_op_backend("auto", probe, "attention"))
        lines.append(f"  auto -> neurons: {neurons}, attention: {attention}")
    if model is not None:
        rows = layer_backends(model, x)
        probe = _probe_of(model) if x is None else x
        lines += ["", f"layers of {type(model).__name__} ({probe.device}, {probe.dtype}):"]
        lines += _table(rows) if rows else ["  no snnkernels layers (no module with a backend switch)"]
    text = "\n".join(lines) + "\n"
    print(text, end="", file=file or sys.stdout)
    return text


def _auto(resolve) -> str:
    try:
        return resolve()
    except (ValueError, backends.BackendUnavailableError) as exc:  # a bad or unrunnable SNNKERNELS_BACKEND
        return f"error: {exc}"
