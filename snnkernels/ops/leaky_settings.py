"""The multi-step leaky neuron's settings and op arguments, defined once.

Every argument of ``snnkernels::leaky_fwd_<backend>`` / ``leaky_bwd_<backend>`` is an ``Arg`` here: its name,
schema type, schema default, meaning, the option bit the kernels read it through (``leaky_flags.h``) and the
passes whose kernels read it. Generated from these tuples: FWD_SCHEMA / BWD_SCHEMA (``ops/leaky.py``), CuPy's flag
table and flag words, the binding of the launchers' and fakes' ``*args`` (``bind``), and, by
scripts/generate_leaky_args.py, csrc/include/snnkernels/leaky_args.h (``cxx_header``: the C++ schemas, parameter
lists, calls, params copies, option bits and flags()) and docs/neuron.md's settings table (``docs_table``).
python_tests/ops/test_neuron_settings.py fails on a stale generated file and compares what stays hand-written
(the params structs' members, the gated / DTA ops' scalar settings). See docs/neuron.md "The neuron's settings".
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace

__all__ = [
    "ALL_FLAGS",
    "BWD_ARGS",
    "BWD_OUTPUTS",
    "FLAG",
    "FLAG_BITS",
    "FWD_ARGS",
    "FWD_OUTPUTS",
    "LAUNCH_FLAGS",
    "NEURON_SETTINGS",
    "SCALAR_SETTINGS",
    "Arg",
    "Bound",
    "bind",
    "flag_word",
    "names",
    "op_schema",
    "positional",
    "cxx_header",
    "docs_table",
    "flag_member",
    "kernel_scalars",
    "struct_settings",
]

FWD, BWD = "fwd", "bwd"


@dataclass(frozen=True)
class Arg:
    """One argument of the leaky ops. ``reads``: the passes whose kernels read it, so whose params struct
    (C++ ``LeakyFwdParams`` / ``LeakyBwdParams``) carries a member of this name; the forward op also takes
    the backward-only settings, which autograd saves for the backward."""

    name: str
    type: str  # as the schema writes it: "Tensor", "Tensor?", "float", "bool", "int"
    meaning: str
    default: str | None = None  # as the schema writes it ("False", "None"); None: required
    flag: str | None = None  # the option bit (FLAG_BITS) that carries it into the kernels: a present tensor or True
    reads: tuple[str, ...] = (FWD, BWD)
    initial: str | None = None  # the C++ params struct member's initial value; None: zero of its type

    @property
    def is_tensor(self) -> bool:
        return self.type.startswith("Tensor")

    def schema(self) -> str:
        return f"{self.type} {self.name}" + ("" if self.default is None else f"={self.default}")


X = Arg("x", "Tensor", "input x_t, [T, ...] fp32 / fp16 / bf16")
V_INIT = Arg(
    "v_init", "Tensor?", "initial state v_0, fp32 [x.shape[1:]]; None: v_init_value everywhere", flag="has_v_init"
)
COEFFICIENT_TENSORS = tuple(
    Arg(f"{name}_t", "Tensor?", f"{name}, fp32 [C'] (C' = 1 or C, dim 2); None: the float {name}", flag=f"{name}_t")
    for name in ("decay", "gain", "bias")
)

# The scalar settings, in the order of the gated / DTA kernels' settings tuple (nn.fused.neuron_settings).
SCALAR_SETTINGS = (
    Arg("decay", "float", "factor on v_{t-1} in the charge (0.0 when decay_t is given)", initial="1.f"),
    Arg("gain", "float", "factor on x_t in the charge (input_gain; 0.0 when gain_t is given)", initial="1.f"),
    Arg("bias", "float", "constant added to the charge each step (0.0 when bias_t is given)"),
    Arg("v_threshold", "float", "firing threshold", initial="1.f"),
    Arg("v_reset", "float", "value after a spike with hard reset (0.0 with soft reset)"),
    Arg("v_init_value", "float", "v_0 of every neuron when v_init is None"),
    Arg(
        "hard_reset",
        "bool",
        "v = v_reset after a spike; False: soft reset, v = h - v_threshold",
        flag="hard_reset",
        initial="true",
    ),
    Arg("strict", "bool", "fire on h > v_threshold; False: on h >= v_threshold", flag="strict"),
    Arg("detach_reset", "bool", "no gradient through the reset", flag="detach_reset", reads=(BWD,)),
    Arg("surrogate_id", "int", "the spike's surrogate derivative (Surrogate.id, snnkernels.surrogate)", reads=(BWD,)),
    Arg("surrogate_param", "float", "the surrogate's parameter (alpha, gamma or width)", reads=(BWD,), initial="2.f"),
)

TRAINING = Arg("training", "bool", "write the checkpoints the backward recomputes from", flag="training", reads=(FWD,))
STORE_FINAL_STATE = Arg("store_final_state", "bool", "write v_final, the state v_T", flag="store_final", reads=(FWD,))
CHUNK = Arg("chunk", "int", "steps per checkpoint (the backward's recompute granularity)")
STORE_V_SEQ = Arg(
    "store_v_seq",
    "bool",
    "write v_seq, the post-reset state of every step",
    default="False",
    flag="store_v_seq",
    reads=(FWD,),
)

# The neuron's settings: the forward's arguments after x.
NEURON_SETTINGS = (V_INIT, *COEFFICIENT_TENSORS, *SCALAR_SETTINGS, TRAINING, STORE_FINAL_STATE, CHUNK, STORE_V_SEQ)

FWD_ARGS = (X, *NEURON_SETTINGS)
FWD_OUTPUTS = ("spikes", "v_final", "checkpoints", "v_seq")

BWD_ARGS = (
    Arg("grad_spikes", "Tensor", "dL/dspikes, x's shape", reads=(BWD,)),
    Arg("grad_v_final", "Tensor?", "dL/dv_T, fp32 [x.shape[1:]], or None", flag="has_grad_v_final", reads=(BWD,)),
    X,
    V_INIT,
    Arg("checkpoints", "Tensor", "the training forward's checkpoints, fp32 [cdiv(T, chunk) - 1, N]", reads=(BWD,)),
    *COEFFICIENT_TENSORS,
    *SCALAR_SETTINGS,
    CHUNK,
    Arg("need_grad_v_init", "bool", "write dL/dv_0", flag="store_grad_v_init", reads=(BWD,)),
    *(
        Arg(
            f"need_grad_{name}",
            "bool",
            f"write the per-neuron partial sums of dL/d{name}",
            flag=f"need_grad_{name}",
            reads=(BWD,),
        )
        for name in ("decay", "gain", "bias")
    ),
    Arg("grad_v_seq", "Tensor?", "dL/dv_seq, x's shape, or None", default="None", flag="has_grad_v_seq", reads=(BWD,)),
)
BWD_OUTPUTS = ("grad_x", "grad_v_init", "grad_decay", "grad_gain", "grad_bias")

# Option bits of the kernels, bit i = FLAG_BITS[i]: the order is the ABI of csrc/include/snnkernels/leaky_flags.h.
FLAG_BITS = (
    "has_v_init",
    "decay_t",
    "gain_t",
    "bias_t",
    "hard_reset",
    "strict",
    "training",
    "store_final",
    "detach_reset",
    "has_grad_v_final",
    "store_grad_v_init",
    "need_grad_decay",
    "need_grad_gain",
    "need_grad_bias",
    "vectorized",
    "store_v_seq",
    "has_grad_v_seq",
)
LAUNCH_FLAGS = ("vectorized",)  # bits set by the launcher (memory alignment), not by an argument
FLAG = {name: 1 << bit for bit, name in enumerate(FLAG_BITS)}
ALL_FLAGS = (1 << len(FLAG_BITS)) - 1


def names(args: tuple[Arg, ...]) -> tuple[str, ...]:
    return tuple(a.name for a in args)


def op_schema(args: tuple[Arg, ...], outputs: tuple[str, ...]) -> str:
    """The torch.library schema (without the op's name) of an op taking ``args`` and returning ``outputs``."""
    return "(" + ", ".join(a.schema() for a in args) + ") -> (" + ", ".join(f"Tensor {o}" for o in outputs) + ")"


class Bound(SimpleNamespace):
    """An op's arguments by name (``bind``): ``a.x``, ``a.decay_t``, ...; ``vars(a)`` for ``flag_word``."""


def bind(args: tuple[Arg, ...], values: tuple, kwargs: Mapping[str, object] | None = None) -> Bound:
    """The op's arguments ``values`` (positional, in schema order) and ``kwargs`` by name, the schema defaults
    filled in: the one place that knows the order, so that the launchers and fakes take ``*args``."""
    kwargs = dict(kwargs or {})
    if len(values) > len(args):
        raise TypeError(f"{len(args)} arguments at most, got {len(values)}")
    bound = {}
    for i, a in enumerate(args):
        if i < len(values):
            bound[a.name] = values[i]
        elif a.name in kwargs:
            bound[a.name] = kwargs.pop(a.name)
        elif a.default is not None:
            bound[a.name] = ast.literal_eval(a.default)
        else:
            raise TypeError(f"missing argument {a.name!r}")
    if kwargs:
        raise TypeError(f"unexpected arguments {sorted(kwargs)}")
    return Bound(**bound)


def positional(args: tuple[Arg, ...], **values: object) -> tuple:
    """``values`` by name as the op's positional arguments, up to the last one given (the rest keep their schema
    defaults); every argument before it must be given."""
    last = max(i for i, a in enumerate(args) if a.name in values)
    unknown = set(values) - set(names(args))
    missing = [a.name for a in args[: last + 1] if a.name not in values]
    if unknown or missing:
        raise TypeError(f"unknown arguments {sorted(unknown)}, missing {missing}")
    return tuple(values[a.name] for a in args[: last + 1])


def flag_word(args: tuple[Arg, ...], kernel: str, values: Mapping[str, object]) -> int:
    """The option bits of pass ``kernel`` (``"fwd"`` / ``"bwd"``) for the arguments ``values`` (by name): a
    flagged argument that the pass reads sets its bit when it is a present tensor or True."""
    word = 0
    for a in args:
        if a.flag is not None and kernel in a.reads:
            value = values[a.name]
            word |= FLAG[a.flag] if (value is not None if a.is_tensor else bool(value)) else 0
    return word


# ---------------------------------------------------------------------------------------------------------
# The C++ copies, generated: csrc/include/snnkernels/leaky_args.h (scripts/generate_leaky_args.py writes it;
# python_tests/ops/test_neuron_settings.py fails when it is not what cxx_header() returns). The same lists drive
# CuPy's launch arguments (kernel_scalars).

CXX_HEADER = "csrc/include/snnkernels/leaky_args.h"
_CXX_PARAM = {
    "Tensor": "const at::Tensor& {}",
    "Tensor?": "const std::optional<at::Tensor>& {}",
    "float": "double {}",
    "bool": "bool {}",
    "int": "int64_t {}",
}
_CXX_MEMBER_CAST = {"float": "static_cast<float>({})", "bool": "{}", "int": "static_cast<int>({})"}
_CXX_VALUE_TYPE = {"float": "float", "bool": "bool", "int": "int"}  # in the params structs and kernel parameters
_CXX_ZERO = {"float": "0.f", "bool": "false", "int": "0"}


def _pass_args(kernel: str) -> tuple[Arg, ...]:
    return FWD_ARGS if kernel == FWD else BWD_ARGS


def struct_settings(kernel: str) -> tuple[tuple[str, str, str], ...]:
    """The params struct members of pass ``kernel`` generated from the definition, as (C++ type, name, initial
    value): every value argument the pass reads (``chunk`` aside: a size), and ``has_<name>`` for an optional
    tensor whose flag the pass reads. The tensors' pointers stay hand-written (their element types differ)."""
    members = []
    for a in _pass_args(kernel):
        if kernel not in a.reads or a.name == "chunk":
            continue
        if not a.is_tensor:
            members.append((_CXX_VALUE_TYPE[a.type], a.name, a.initial or _CXX_ZERO[a.type]))
        elif a.flag is not None and flag_member(a) != a.name:
            members.append(("bool", flag_member(a), "false"))
    return tuple(members)


def kernel_scalars(kernel: str) -> tuple[Arg, ...]:
    """The settings the CUDA kernels of pass ``kernel`` take as values (in this order, after the sizes): those
    it reads that are neither tensors, nor option bits (they travel in the flags word), nor ``chunk``. CuPy's
    launch arguments and the C++ launches follow the same list."""
    return tuple(
        a for a in _pass_args(kernel) if kernel in a.reads and not a.is_tensor and a.flag is None and a.name != "chunk"
    )


def docs_table() -> str:
    """docs/neuron.md's table of the settings (NEURON_SETTINGS), generated with the header."""
    rows = ["| setting | type | default | read by | flag | meaning |", "|---|---|---|---|---|---|"]
    for a in NEURON_SETTINGS:
        rows.append(
            f"| `{a.name}` | `{a.type}` | {a.default or '-'} | {', '.join(a.reads)} | {a.flag or '-'} | {a.meaning} |"
        )
    return "\n".join(rows) + "\n"


def flag_member(a: Arg) -> str:
    """The params struct member whose truth sets ``a``'s flag bit: a coefficient tensor's pointer (``decay_t``),
    another tensor's ``has_<name>``, or the bool argument itself."""
    if not a.is_tensor or a.name.endswith("_t"):
        return a.name
    return f"has_{a.name}"


def _enumerator(flag: str) -> str:
    return "k" + "".join(part.capitalize() for part in flag.split("_"))


def _macro(name: str, items: list[str], separator: str) -> str:
    if not items:
        return f"#define {name}\n"
    lines = [f"    {item}{separator.rstrip() if i < len(items) - 1 else ''}" for i, item in enumerate(items)]
    return f"#define {name} \\\n" + " \\\n".join(lines) + "\n"


def cxx_header() -> str:
    """The text of csrc/include/snnkernels/leaky_args.h: preprocessor macros only, so that torch-free code
    (leaky_flags.h, the params structs, NVRTC) and the torch API (leaky_api*.cpp, registration.cpp) share it."""
    out = [
        "// Generated from snnkernels/ops/leaky_settings.py by scripts/generate_leaky_args.py: do not edit.",
        "// The leaky ops' arguments in C++ (docs/neuron.md \"The neuron's settings\"): the schemas",
        "// (registration.cpp), the entry points' parameter lists and calls (leaky_api*.cpp), the copy of each",
        "// scalar setting into the params struct of the passes that read it, the option bits (leaky_flags.h),",
        "// the params structs' setting members and flags() (leaky_params.h), and the CUDA kernels' value",
        "// parameters with the launches' arguments (leaky_kernel.cuh, leaky_launch_impl.cuh; CuPy sends the same",
        "// list). Macros only: torch-free and NVRTC-safe.",
        "#pragma once",
        "",
    ]
    out.append(f'#define SNNK_LEAKY_FWD_SCHEMA "{op_schema(FWD_ARGS, FWD_OUTPUTS)}"\n')
    out.append(f'#define SNNK_LEAKY_BWD_SCHEMA "{op_schema(BWD_ARGS, BWD_OUTPUTS)}"\n')
    for kernel, args in (("FWD", FWD_ARGS), ("BWD", BWD_ARGS)):
        out.append(_macro(f"SNNK_LEAKY_{kernel}_PARAMS", [_CXX_PARAM[a.type].format(a.name) for a in args], ", "))
        out.append(_macro(f"SNNK_LEAKY_{kernel}_ARGS", list(names(args)), ", "))
        fills = [
            f"(p).{a.name} = {_CXX_MEMBER_CAST[a.type].format(a.name)};"
            for a in args
            if not a.is_tensor and kernel.lower() in a.reads and a.name != "chunk"
        ]
        out.append(_macro(f"SNNK_LEAKY_{kernel}_FILL_SCALARS(p)", fills, " "))
        # args a pass does not read are still parameters of its entry points (the schema is shared)
        unread = [f"(void){a.name};" for a in args if kernel.lower() not in a.reads]
        out.append(_macro(f"SNNK_LEAKY_{kernel}_UNREAD", unread, " "))
        terms = [
            f"({flag_member(a)} ? {_enumerator(a.flag)} : 0u)"
            for a in args
            if a.flag is not None and kernel.lower() in a.reads
        ]
        out.append(_macro(f"SNNK_LEAKY_{kernel}_FLAGS", terms, " | "))
        members = [f"{type_} {name} = {initial};" for type_, name, initial in struct_settings(kernel.lower())]
        out.append(_macro(f"SNNK_LEAKY_{kernel}_SETTING_MEMBERS", members, " "))
        scalars = kernel_scalars(kernel.lower())
        out.append(
            _macro(
                f"SNNK_LEAKY_{kernel}_KERNEL_SCALARS", [f"{_CXX_VALUE_TYPE[a.type]} {a.name}" for a in scalars], ", "
            )
        )
        out.append(_macro(f"SNNK_LEAKY_{kernel}_KERNEL_SCALAR_ARGS(p)", [f"(p).{a.name}" for a in scalars], ", "))
    enum = [f"{_enumerator(flag)} = 1u << {bit}," for bit, flag in enumerate(FLAG_BITS)]
    out.append(_macro("SNNK_LEAKY_FLAG_ENUMERATORS", enum, " "))
    return "\n".join(out)
