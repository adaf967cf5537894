"""Capture the Triton launches the ops really make, then compile and read exactly those (no GPU needed).

``capture(fn)`` runs ``fn`` (the public functions at a benchmark shape, on CPU tensors, Triton's interpreter
OFF) with ``JITFunction.run`` replaced by a recorder: each launcher picks its GPU tile, warps, grid and
constexprs by its own code, and no kernel executes (its outputs stay uninitialised). ``specialise`` then
feeds the recorded arguments through Triton's own binder for a CUDA target, which reproduces the JIT's
specialisation of a real launch: 16-byte-aligned pointers and ints divisible by 16 get ``tt.divisibility``,
ints equal to 1 become constants, ``do_not_specialize`` is honoured. A pointer's alignment is taken as a CUDA
allocation would give it (the caching allocator's blocks are 512-byte aligned): its storage offset in bytes.
``analyse`` compiles that signature for sm_80 / sm_90 (``triton.compile``), and reads the cubin with the
``cuobjdump`` Triton bundles: registers, stack, local and shared memory (``-res-usage``), and in the SASS of
the main loop the widths of the global loads / stores and the number of load stages (docs/static_report.md
"Method"). Bytes moved are the sizes of the tensors whose pointers the compiled TTIR loads from / stores to.

Lives in ``bench/`` because it runs the benchmark's own cases (``bench.registry``, ``bench.attention``):
``CASES`` below is the one list of shapes, read by ``bench.static_report`` and its CI test
(python_tests/kernels/test_static_report.py). Every registered op's kernels (snnkernels/ops/registry.py) that
no benchmark case launches are captured from the registry's own samples, so the registry decides coverage.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import triton
import triton.runtime.jit as triton_jit
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend

from snnkernels import backends

__all__ = [
    "ARCHS",
    "CASES",
    "CUOBJDUMP",
    "PRESET_FLAGS",
    "Launch",
    "StaticCase",
    "TensorInfo",
    "analyse",
    "capture",
    "capture_case",
    "ci_cases",
    "load_stages",
    "registry_cases",
    "sass_main_loop",
    "specialise",
    "ttir_pointer_use",
]

ARCHS = (80, 90)
WARP = 32
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
ALLOC_ALIGN = 512  # CUDA caching allocator block alignment (bytes)
# Integer flags a launcher presets and reads back after the launch (spike_pack's first non-binary index, preset
# to n: "none found"). Kept as preset: a kernel that does not run then reads as a valid input, where zeroing
# them (as the index outputs are) would read as a failed check.
PRESET_FLAGS = frozenset({"first_bad_ptr"})


@dataclass(frozen=True)
class StaticCase:
    """One benchmark case: ``source`` is "lif" (bench.registry) or "attention" (bench.attention) or
    "registry" (an op's opcheck samples); ``op`` its op name, ``shape``, ``dtype``."""

    source: str
    op: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def label(self) -> str:
        dt = str(self.dtype).removeprefix("torch.")
        return f"{self.op} {'x'.join(map(str, self.shape))} {dt}" if self.shape else f"{self.op} (samples)"


def _lif_cases() -> list[StaticCase]:
    from .registry import GPU_CASES

    return [StaticCase("lif", c.op, c.shape, c.dtype) for c in GPU_CASES]


def _attention_cases() -> list[StaticCase]:
    from .attention import PASSES, cases
    from .run import DTYPES

    return [
        StaticCase("attention", c.op, c.shape, c.dtype)
        for c in cases("cuda", False, list(PASSES), list(DTYPES.values()))
    ]


def _all_cases() -> list[StaticCase]:
    return _lif_cases() + _attention_cases()


# The one list of shapes: every GPU benchmark case (bench/registry.py GPU_CASES, bench/attention.py cases("cuda")).
CASES: list[StaticCase] = _all_cases()


def ci_cases() -> list[StaticCase]:
    """The CI subset of ``CASES``: each op's first shape in float32, and the LIF's first in bfloat16 (its
    backward's loads are narrower). Every time-loop kernel the benchmarks launch is among them."""
    out, seen = [], set()
    for c in CASES:
        key = (c.op, c.dtype)
        if key not in seen and (c.dtype == torch.float32 or (c.op == "lif" and c.dtype == torch.bfloat16)):
            seen.add(key)
            out.append(c)
    return out


# ---------------------------------------------------------------------------------------------------------
# capture


@dataclass(frozen=True)
class TensorInfo:
    """What the specialisation and the byte count need of a tensor argument."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int  # storage offset, elements

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorInfo:
        return cls(t.dtype, tuple(t.shape), t.storage_offset())

    def numel(self) -> int:
        return math.prod(self.shape)

    def element_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    def storage_offset(self) -> int:
        return self.offset

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point


def _is_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor | TensorInfo)


@dataclass
class Launch:
    """One recorded ``kernel[grid](...)`` call."""

    case: str
    fn: Any  # the JITFunction
    args: dict[str, Any]  # every parameter by name (defaults applied), tensors as passed
    options: dict[str, Any]  # num_warps, num_stages, enable_fp_fusion, ...
    grid: tuple[int, int, int]
    phase: str = ""  # "fwd" or "bwd" for a benchmark case, "samples" for a registry op's samples

    @property
    def kernel(self) -> str:
        return self.fn.__name__

    @property
    def programs(self) -> int:
        return math.prod(self.grid)


@contextlib.contextmanager
def capture(case_label: str = "") -> Iterator[list[Launch]]:
    """Record every Triton launch in the block instead of running it; the Triton backend accepts CPU tensors
    meanwhile (its launchers then choose the GPU tiles: the interpreter stays off)."""
    from snnkernels.ops import registry

    # every launcher module imported now, before the probe is patched: one first imported inside the block would
    # bind the patched probe by name for good and pick the interpreter's tiles ever after
    assert registry.REGISTRY
    launches: list[Launch] = []
    original_run, original_probe = triton_jit.JITFunction.run, backends.triton_interpreter_enabled

    def record(self, *args, grid, warmup, **kwargs):
        names = [p.name for p in self.params]
        bound = dict(zip(names, args, strict=False))
        options = {}
        for k, v in kwargs.items():
            (bound if k in names else options)[k] = v
        for p in self.params:
            if p.name not in bound and p.default is not p.empty:
                bound[p.name] = p.default
        g = grid(bound) if callable(grid) else grid
        g = tuple(int(v) for v in g) + (1,) * (3 - len(g))
        for k, v in bound.items():
            if isinstance(v, torch.Tensor):
                if not v.is_floating_point() and k not in PRESET_FLAGS:
                    # index outputs (argmax, counts): eager code indexes with them
                    v.data.zero_()  # .data: no version bump for autograd
                bound[k] = TensorInfo.of(v)  # the record keeps no tensor alive
        launches.append(Launch(case_label, self, bound, options, g))
        return None

    convs = {name: getattr(F, name) for name in ("conv1d", "conv2d", "conv3d")}
    triton_jit.JITFunction.run = record
    backends.triton_interpreter_enabled = lambda: True  # only _triton_problem reads it through the module
    for name, conv in convs.items():
        setattr(F, name, functools.partial(_shape_only_conv, conv))
    try:
        yield launches
    finally:
        triton_jit.JITFunction.run = original_run
        backends.triton_interpreter_enabled = original_probe
        for name, conv in convs.items():
            setattr(F, name, conv)


class _ShapeOnly(torch.autograd.Function):
    """A convolution's output and gradients as uninitialised tensors of the right shape and strides (taken
    from the meta device): the dense convolutions around the kernels (T-NA, the MLPs) would otherwise cost
    minutes of CPU at the benchmark shapes, and their values do not change any launch."""

    @staticmethod
    def forward(conv, x, weight, bias, *rest):
        meta = conv(x.to("meta"), weight.to("meta"), None if bias is None else bias.to("meta"), *rest)
        return torch.empty_strided(meta.shape, meta.stride(), dtype=x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, x, weight, bias, *rest = inputs
        ctx.shapes = [(t.shape, t.stride(), t.dtype) if t is not None else None for t in (x, weight, bias)]
        ctx.n_rest = len(rest)

    @staticmethod
    def backward(ctx, grad):
        grads = [None if s is None else torch.empty_strided(s[0], s[1], dtype=s[2]) for s in ctx.shapes]
        return (None, *grads, *([None] * ctx.n_rest))


def _shape_only_conv(conv, x, weight, bias=None, *rest, **kwargs):
    return _ShapeOnly.apply(conv, x, weight, bias, *_conv_args(rest, kwargs))


def _conv_args(rest: tuple, kwargs: dict) -> tuple:
    """stride, padding, dilation, groups as positional arguments."""
    names = ("stride", "padding", "dilation", "groups")
    defaults = (1, 0, 1, 1)
    values = list(rest) + [kwargs.get(n, d) for n, d in zip(names[len(rest) :], defaults[len(rest) :], strict=True)]
    return tuple(values)


def _run_bench_case(case: StaticCase, launches: list[Launch]) -> None:
    """Forward then backward of ``case``; the launches recorded so far get their phase at each step."""

    def mark(phase: str) -> None:
        for launch in launches:
            launch.phase = launch.phase or phase

    if case.source == "lif":
        from .registry import OPS, Case

        bc = Case(case.op, case.shape, case.dtype)
        op = OPS[case.op]
        x = torch.empty(case.shape, dtype=case.dtype).requires_grad_()
        params = op.make_params(bc, "cpu", False)
        y = op.run(x, params, "triton")
        mark("fwd")
        y.backward(torch.empty_like(y))
        mark("bwd")
        return
    from . import attention
    from .registry import Case

    bc = Case(case.op, case.shape, case.dtype)
    fn = attention.op_fn(bc, "cpu", "triton")
    tensors, leaves, grad_out = attention.make_inputs(bc, "cpu")
    out = fn(*tensors)
    mark("fwd")
    out.backward(grad_out)
    mark("bwd")


def capture_case(case: StaticCase) -> list[Launch]:
    """The launches of ``case`` (forward and backward)."""
    if case.source == "registry":
        return _capture_registry_op(case.op)
    with torch.random.fork_rng(), capture(case.label) as launches:
        torch.manual_seed(0)
        _run_bench_case(case, launches)
    return launches


def _capture_registry_op(name: str) -> list[Launch]:
    from snnkernels.ops import registry

    entry = registry.ENTRIES[name]
    registry.load((entry,))
    with torch.random.fork_rng(), capture(f"{name} (samples)") as launches:
        torch.manual_seed(0)
        for sample in entry.samples("cpu"):
            entry.op()(*sample)
    for launch in launches:
        launch.phase = "samples"
    return [launch for launch in launches if launch.kernel in entry.kernels]


def registry_cases(captured_kernels: set[str]) -> list[StaticCase]:
    """Registry ops (with Triton kernels) whose kernels no benchmark case launched: captured from their samples."""
    from snnkernels.ops.registry import REGISTRY

    return [
        StaticCase("registry", e.name, (), torch.float32)
        for e in REGISTRY
        if e.backend == "triton" and e.kernels and not set(e.kernels) <= captured_kernels
    ]


# ---------------------------------------------------------------------------------------------------------
# specialisation (Triton's binder, as a CUDA launch runs it)


class _DevicePointer:
    """Stands in for a tensor in Triton's binder: the address a CUDA allocation would give it."""

    def __init__(self, t: torch.Tensor | TensorInfo):
        self.dtype = t.dtype
        self._ptr = ALLOC_ALIGN * 64 + t.storage_offset() * t.element_size()

    def data_ptr(self) -> int:
        return self._ptr


@functools.cache
def _backend(arch: int):
    return make_backend(GPUTarget("cuda", arch, WARP))


@functools.cache
def _binder(fn: Any, arch: int):
    return triton_jit.create_function_from_signature(fn.signature, fn.params, _backend(arch))


def specialise(launch: Launch, arch: int) -> tuple[dict, dict, dict, Any]:
    """(signature, constexprs, attrs, options) of ``launch`` as the JIT would compile it for ``arch``."""
    args = {k: _DevicePointer(v) if _is_tensor(v) else v for k, v in launch.args.items()}
    bound, spec, opts = _binder(launch.fn, arch)(**args, **launch.options)
    options, sig, constexprs, attrs = launch.fn._pack_args(_backend(arch), dict(launch.options), bound, spec, opts)
    return sig, constexprs, attrs, options


def compile_key(launch: Launch, arch: int) -> str:
    sig, constexprs, attrs, options = specialise(launch, arch)
    return repr((launch.fn.__module__, launch.kernel, arch, sig, constexprs, attrs, sorted(options.__dict__.items())))


# ---------------------------------------------------------------------------------------------------------
# reading the compiled kernel

_DEF = re.compile(r"^\s*(%[\w.$-]+)(?::\d+)?\s*=\s*([\w.]+)\s+(.*)$")
_REF = re.compile(r"%[\w.$-]+")
# ops whose result is a pointer derived from their first operand
_PTR_OPS = {
    "tt.addptr",
    "tt.splat",
    "tt.broadcast",
    "tt.expand_dims",
    "tt.reshape",
    "tt.trans",
    "tt.bitcast",
    "tt.advance",
    "tt.make_tensor_ptr",
    "ttg.convert_layout",
}


def ttir_pointer_use(ttir: str) -> tuple[set[str], set[str]]:
    """(parameters loaded from, parameters stored to) in the TTIR (the constexpr-dead branches are gone):
    each load / store's pointer is traced back through pointer arithmetic and loop-carried values."""
    src: dict[str, set[str]] = {}
    head = re.search(r"tt\.func public @\w+\((.*?)\)\s*attributes", ttir, re.S)
    for name in re.findall(r"%(\w+): !tt\.ptr", head.group(1) if head else ""):
        src[f"%{name}"] = {name}

    def of(ref: str) -> set[str]:
        return src.get(ref.split("#")[0], set())

    reads: set[str] = set()
    writes: set[str] = set()
    for line in ttir.splitlines():
        line = line.split(" loc(")[0]
        if "iter_args(" in line:  # loop-carried values start as their initial value
            for a, b in re.findall(r"(%[\w.$-]+)\s*=\s*(%[\w.$-]+)", line.split("iter_args(", 1)[1]):
                src.setdefault(a, set()).update(of(b))
        m = _DEF.match(line)
        if m:
            name, op, rest = m.groups()
            refs = _REF.findall(rest)
            if op in _PTR_OPS and refs:
                src.setdefault(name, set()).update(of(refs[0]))
            elif op == "arith.select" and len(refs) >= 3:
                src.setdefault(name, set()).update(of(refs[1]) | of(refs[2]))
            elif op == "tt.load" and refs:
                reads |= of(refs[0])
        else:
            s = re.match(r"^\s*tt\.store\s+(%[\w.$-]+)", line)
            if s:
                writes |= of(s.group(1))
            a = re.match(r"^\s*(?:tt\.atomic_\w+)\s+\w*,?\s*(%[\w.$-]+)", line)
            if a:
                writes |= of(a.group(1))
    # atomics defined with a result
    for m in re.finditer(r"=\s*tt\.atomic_\w+\s+\w+,\s*\w*,?\s*(%[\w.$-]+)", ttir):
        writes |= of(m.group(1))
    return reads, writes


_INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


def _sass_instructions(sass: str) -> list[tuple[int, str, str]]:
    return [(int(a, 16), op, rest) for a, op, rest in _INSTR.findall(sass)]


def _width(op: str) -> int:
    """Bytes per thread of an LDG / STG (LDG.E.128 -> 16, LDG.E.64 -> 8, LDG.E -> 4, .U16 -> 2, .U8 -> 1)."""
    parts = op.split(".")
    for p in parts:
        if p in ("128", "64"):
            return int(p) // 8
        if p in ("U16", "S16", "16"):
            return 2
        if p in ("U8", "S8", "8"):
            return 1
    return 4


def sass_main_loop(sass: str) -> dict:
    """The main loop (the innermost backward branch with the most global load bytes per trip, then the most
    loads + stores; the whole kernel when it has no loop): its LDG / STG widths, their order, the load stages,
    and the kernel's STL / LDL. Load bytes first, because the estimate is a read rate (docs/static_report.md
    "Method")."""
    instrs = _sass_instructions(sass)
    loops = []
    for addr, op, rest in instrs:
        if op.startswith("BRA"):
            t = re.search(r"0x([0-9a-f]+)", rest)
            if t and int(t.group(1), 16) < addr:
                loops.append((int(t.group(1), 16), addr))
    innermost = [lp for lp in loops if not any(o != lp and lp[0] <= o[0] and o[1] <= lp[1] for o in loops)]

    def mem(lo: int, hi: int) -> list[tuple[str, int]]:
        return [
            ("L" if op.startswith("LDG") else "S", _width(op))
            for a, op, _ in instrs
            if lo <= a <= hi and (op.startswith("LDG") or op.startswith("STG"))
        ]

    def weight(lp: tuple[int, int]) -> tuple[int, int]:
        body = mem(*lp)
        return sum(w for k, w in body if k == "L"), len(body)

    body, has_loop = (mem(*max(innermost, key=weight)), True) if innermost else ([], False)
    if not body:
        body, has_loop = mem(0, 1 << 62), False

    def widths(kind: str) -> dict[int, int]:
        out: dict[int, int] = {}
        for k, w in body:
            if k == kind:
                out[w] = out.get(w, 0) + 1
        return dict(sorted(out.items(), reverse=True))

    order = "".join(k for k, _ in body)
    return {
        "has_loop": has_loop,
        "order": order,
        "loads": widths("L"),
        "stores": widths("S"),
        "load_bytes": sum(w for k, w in body if k == "L"),
        "store_bytes": sum(w for k, w in body if k == "S"),
        "load_stages": load_stages(order, cyclic=has_loop),
        "stl": sum(op.startswith("STL") for _, op, _ in instrs),
        "ldl": sum(op.startswith("LDL") for _, op, _ in instrs),
        "bar": sum(op.startswith("BAR") for a, op, _ in instrs),
    }


def load_stages(order: str, cyclic: bool = True) -> int:
    """Maximal runs of loads ("L") not separated by a store ("S"); in a loop the last run continues into the
    next iteration's first (a store between two loads makes the second wait for the first's data)."""
    if "L" not in order:
        return 0
    if "S" not in order:
        return 1
    runs = len(re.findall(r"L+", order))
    if cyclic and order[0] == "L" and order[-1] == "L":
        runs -= 1
    return runs


def _cuobjdump(cubin: bytes, *flags: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([CUOBJDUMP, *flags, f.name], capture_output=True, text=True, check=True).stdout


_CACHE: dict[str, dict] = {}


def analyse(launch: Launch, arch: int) -> dict:
    """Compile ``launch`` for sm_``arch`` as the JIT would, and read it (cached per signature in this process)."""
    key = compile_key(launch, arch)
    if key in _CACHE:
        return _CACHE[key]
    sig, constexprs, attrs, options = specialise(launch, arch)
    compiled = triton.compile(
        ASTSource(launch.fn, sig, constexprs, attrs), target=GPUTarget("cuda", arch, WARP), options=options.__dict__
    )
    cubin = compiled.asm["cubin"]
    usage = {
        k.lower(): int(v) for k, v in re.findall(r"(REG|STACK|LOCAL|SHARED):(\d+)", _cuobjdump(cubin, "-res-usage"))
    }
    reads, writes = ttir_pointer_use(compiled.asm["ttir"])
    names = list(sig)
    specialised = {
        "divisibility_16": sorted(names[p[0]] for p in attrs if len(p) == 1),
        "constant_1": sorted(
            names[p[0]]
            for p, v in constexprs.items()
            if len(p) == 1 and not launch.fn.params[p[0]].is_constexpr and v == 1
        ),
    }
    row = {
        **usage,
        "shared": max(usage.get("shared", 0), int(compiled.metadata.shared)),
        **sass_main_loop(_cuobjdump(cubin, "-sass")),
        "contracted_fma": bool(re.search(r"\bfma\.rn\.f32\b", compiled.asm["ptx"])),
        "reads": sorted(reads),
        "writes": sorted(writes),
        "specialised": specialised,
    }
    _CACHE[key] = row
    return row


def launch_bytes(launch: Launch, row: dict, max_numel: int | None = None) -> tuple[int, int]:
    """(bytes read, bytes written): each tensor the kernel loads from / stores to, counted once per direction
    (only those of at most ``max_numel`` elements when given)."""

    def nbytes(name: str) -> int:
        t = launch.args.get(name)
        if not _is_tensor(t) or (max_numel is not None and t.numel() > max_numel):
            return 0
        return t.numel() * t.element_size()

    return sum(nbytes(n) for n in row["reads"]), sum(nbytes(n) for n in row["writes"])


def user_constexprs(launch: Launch) -> dict[str, Any]:
    """The constexprs the launcher set (flags, tiles), without the tensors."""
    return {p.name: launch.args[p.name] for p in launch.fn.params if p.is_constexpr and p.name in launch.args}


@dataclass
class CaseLaunches:
    case: StaticCase
    launches: list[Launch] = field(default_factory=list)
    error: str | None = None


def capture_all(
    cases: list[StaticCase] | None = None, with_registry: bool = True, log: Callable[[str], None] | None = None
) -> list[CaseLaunches]:
    """Capture every case (default ``CASES``), then the registry ops no case reached."""
    out = []
    for case in CASES if cases is None else cases:
        if log:
            log(f"capture {case.label}")
        try:
            out.append(CaseLaunches(case, capture_case(case)))
        except Exception as exc:  # noqa: BLE001 - reported as a failed case, never skipped silently
            out.append(CaseLaunches(case, [], f"{type(exc).__name__}: {exc}"))
    if with_registry:
        seen = {launch.kernel for c in out for launch in c.launches}
        for case in registry_cases(seen):
            if log:
                log(f"capture {case.label}")
            try:
                out.append(CaseLaunches(case, capture_case(case)))
            except Exception as exc:  # noqa: BLE001
                out.append(CaseLaunches(case, [], f"{type(exc).__name__}: {exc}"))
    return out
