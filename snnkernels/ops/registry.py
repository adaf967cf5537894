"""Every op registered under ``torch.ops.snnkernels``, as data: one ``OpEntry`` per op.

An entry names the op, the module whose import registers it, the backend and devices that implement it,
the Triton kernels it launches (the AOT compile list, python_tests/kernels/triton_aot.py, covers each), whether it
has its own autograd formula, whether its results are bit-identical run to run, and a factory of tiny valid
inputs that python_tests/ops/test_op_registry.py hands to ``torch.library.opcheck``. ``CAPABILITIES`` (op x
backend / device -> None when it runs there, else the reason it cannot) is derived from the entries.

The entries live beside their ops: each backend module of an op family (``ops/<stem>_<backend>.py``, the one-stem
rule of CONTRIBUTING.md; or its backend-independent ``ops/<stem>.py`` for ops defined there) ends with ``OPS``,
its entries; this module collects them from every module of ``snnkernels.ops``. Adding an op
is its entry in its own launcher module: the registry test fails for a registered op without one (and for an
entry whose op is not registered), and runs opcheck on the entry's samples.

Importing this module imports no op module; ``REGISTRY`` / ``ENTRIES`` / ``CAPABILITIES`` (first use) and
``load()`` do (``load`` also loads the native extension).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "NAMESPACE",
    "NATIVE_MODULE",
    "SAMPLE_SHAPE",
    "TARGETS",
    "AotVariant",
    "BenchRow",
    "OpEntry",
    "audit",
    "backend_modules",
    "op_modules",
    "capability",
    "load",
    "neuron_args",
    "rand",
    "randn",
    "registered_op",
    "registered_ops",
    "triton_entry",
]

NAMESPACE = "snnkernels"
NATIVE_MODULE = "snnkernels._C"
# (backend, device) pairs an op of this package can run on; Triton runs on CPU tensors only under its
# interpreter (TRITON_INTERPRET=1, tests), see snnkernels/backends.py
TARGETS = (("triton", "cuda"), ("triton", "cpu"), ("native", "cpu"), ("native", "cuda"), ("cupy", "cuda"))

Samples = Callable[[str], list[tuple]]
# one compile variant of python_tests/kernels/triton_aot.py: (the @triton.jit kernel, its pointers that carry the
# data dtype, the data dtype "fp32" / "fp16" / "bf16", the constexprs, num_warps)
AotVariant = tuple[Any, set[str], str, dict[str, Any], int]


@dataclass(frozen=True)
class BenchRow:
    """A row of bench/attention.py carried by an op's entry, so that adding an op adds no benchmark code: the
    benchmark times ``run(shape, backend)`` for ``backend`` "torch" (eager and torch.compile) and "triton" (ours),
    after checking ours against eager, and bench/static_report.py compiles and reads the launches of its GPU
    shapes (docs/static_report.md)."""

    name: str  # the row's op name in the results (``--ops``)
    # (shape, dtype, device, generator) -> (the arguments, those that get gradients, dL/d(output))
    inputs: Callable[[tuple[int, ...], torch.dtype, str, torch.Generator], tuple[list, list, torch.Tensor]]
    run: Callable[[tuple[int, ...], str], Callable[..., torch.Tensor]]  # (shape, backend) -> f(*arguments)
    gpu_shapes: tuple[tuple[int, ...], ...]  # [T, B, C, H, W] timed on a GPU
    cpu_shapes: tuple[tuple[int, ...], ...]  # the same rows shrunk for a CPU run (eager and compile only)
    passes: tuple[int | None, int | None] = (None, None)  # (forward, backward) passes of the byte floor, if any
    half: bool = True  # also benchmarked in fp16 / bf16


@dataclass(frozen=True)
class OpEntry:
    name: str  # the op is torch.ops.snnkernels.<name>
    module: str  # importing it registers the op (NATIVE_MODULE: loaded by snnkernels._ext.load_native)
    backend: str  # "triton", "native" or "cupy"
    samples: Samples  # device -> argument tuples for opcheck (tiny, valid)
    devices: tuple[str, ...] = ("cpu", "cuda")
    kernels: tuple[str, ...] = ()  # Triton kernels it launches
    autograd: bool = False  # its own register_autograd formula; else an autograd.Function around it differentiates
    deterministic: bool = True  # fixed-order reductions, no atomics: bit-identical reruns
    # opcheck util -> why the op cannot pass it (none today; an exemption must say why)
    opcheck_exempt: dict[str, str] = field(default_factory=dict)
    # why a kernel in ``kernels`` is not among python_tests/kernels/triton_aot.py's variants (kernel -> reason)
    aot_exempt: dict[str, str] = field(default_factory=dict)
    # () -> the compile variants of its kernels (python_tests/kernels/triton_aot.py compiles them for sm_80 / sm_90)
    aot: Callable[[], Iterable[AotVariant]] | None = None
    bench: tuple[BenchRow, ...] = ()  # its benchmark rows (bench/attention.py)

    @property
    def qualname(self) -> str:
        return f"{NAMESPACE}::{self.name}"

    def op(self) -> Any:
        return getattr(getattr(torch.ops, NAMESPACE), self.name).default


# ---------------------------------------------------------------------------------------------------------
# helpers of the entries' samples (CPU under the interpreter: a few elements each)

SAMPLE_SHAPE = (3, 2, 3, 2, 3)  # T, B, C, H, W


def randn(dev: str, *shape: int, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, device=dev, requires_grad=grad)


def rand(dev: str, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, device=dev)


def registered_op(name: str) -> Any:
    return getattr(torch.ops.snnkernels, name).default


def neuron_args(hard: bool, strict: bool) -> tuple:
    """(decay, gain, bias, v_threshold, v_reset, v_init_value, hard_reset, strict) of the gated / DTA ops."""
    return 0.5, 1.0, 0.1, 1.0, 0.0, 0.0, hard, strict


def triton_entry(name: str, module: str, samples: Samples, *kernels: str, **flags: Any) -> OpEntry:
    """A Triton op's entry; ``module``: the one that registers it (its ``__name__``)."""
    return OpEntry(name, module, "triton", samples, kernels=kernels, **flags)


# ---------------------------------------------------------------------------------------------------------
# the registry: the OPS of every backend module

BACKENDS = ("triton", "native", "cupy")


def backend_modules() -> list[str]:
    """The backend modules of the op families: ``snnkernels.ops.<stem>_<backend>``."""
    return [m for m in op_modules() if m.rpartition("_")[2] in BACKENDS]


def op_modules() -> list[str]:
    """Every public module of ``snnkernels.ops`` but this one: where entries (``OPS``) may live."""
    from . import __path__ as ops_path

    return sorted(
        f"{__package__}.{m.name}"
        for m in pkgutil.iter_modules(ops_path)
        if not m.name.startswith("_") and m.name != "registry"
    )


def _collect() -> tuple[tuple[OpEntry, ...], dict[str, str]]:
    entries: list[OpEntry] = []
    unloadable: dict[str, str] = {}
    for name in op_modules():
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # no Triton: its ops are not registered either
            unloadable[name] = repr(exc)
            continue
        entries += getattr(module, "OPS", ())
    return tuple(entries), unloadable


# module attributes computed on first use (PEP 562), not in __all__
_LAZY: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    # REGISTRY, ENTRIES, CAPABILITIES and UNLOADABLE import the backend modules on first use
    if name not in ("REGISTRY", "ENTRIES", "CAPABILITIES", "UNLOADABLE"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _LAZY:
        registry, unloadable = _collect()
        _LAZY["REGISTRY"] = registry
        _LAZY["UNLOADABLE"] = unloadable
        _LAZY["ENTRIES"] = {e.name: e for e in registry}
        # op name -> {(backend, device): None where it runs, else the reason it cannot}
        _LAZY["CAPABILITIES"] = {
            e.name: {(backend, device): _capability(e, backend, device) for backend, device in TARGETS}
            for e in registry
        }
    return _LAZY[name]


def _capability(entry: OpEntry, backend: str, device: str) -> str | None:
    if backend != entry.backend:
        return f"{entry.qualname} is the {entry.backend} backend's op; {backend} does not implement it"
    if device not in entry.devices:
        return f"{entry.qualname} has no {device} kernel ({entry.backend} runs on {' / '.join(entry.devices)})"
    return None


def capability(name: str, backend: str, device: str, dtype: torch.dtype = torch.float32) -> str | None:
    """Why op ``name`` cannot run on ``backend`` / ``device`` here (the table's reason, else this install's:
    Triton missing or its interpreter off, the extension not built, no CuPy), or None when it can."""
    reason = __getattr__("CAPABILITIES")[name].get((backend, device), f"{backend} does not run on {device}")
    if reason is not None:
        return reason
    from ..backends import problem_on

    return problem_on(backend, device, dtype)


def load(entries: tuple[OpEntry, ...] | None = None) -> dict[str, str]:
    """Import the modules that register ``entries``' ops (default: every entry); {module: why it did not load}
    for those that failed (no Triton, no native build)."""
    problems: dict[str, str] = {} if entries is not None else dict(__getattr__("UNLOADABLE"))
    for module in dict.fromkeys(e.module for e in (__getattr__("REGISTRY") if entries is None else entries)):
        if module == NATIVE_MODULE:
            from .. import _ext

            if not _ext.load_native():
                problems[module] = _ext.native_status()[1]
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            problems[module] = repr(exc)
    return problems


def registered_ops(namespace: str = NAMESPACE) -> set[str]:
    """Names of the ops the dispatcher knows under ``namespace`` (without the namespace)."""
    prefix = f"{namespace}::"
    return {name.removeprefix(prefix) for name in torch._C._dispatch_get_all_op_names() if name.startswith(prefix)}


def audit(
    entries: tuple[OpEntry, ...] | None = None, namespace: str = NAMESPACE, unloaded: tuple[str, ...] = ()
) -> list[str]:
    """What disagrees between the dispatcher and ``entries``: registered ops without an entry, and entries
    whose op is not registered (except those of the ``unloaded`` modules)."""
    entries = __getattr__("REGISTRY") if entries is None else entries
    registered = registered_ops(namespace)
    names = {e.name for e in entries}
    problems = [
        f"{namespace}::{n} is registered but has no entry (OPS of its ops module)" for n in sorted(registered - names)
    ]
    problems += [
        f"the entry {e.name} names no registered op in {namespace}"
        for e in entries
        if e.name not in registered and e.module not in unloaded
    ]
    return problems
