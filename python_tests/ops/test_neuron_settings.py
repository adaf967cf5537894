"""Every copy of the leaky neuron's settings agrees with their one definition, ops/leaky_settings.py.

CPU only, no kernel runs. Generated from the definition: csrc/include/snnkernels/leaky_args.h (the schemas that
csrc/registration.cpp registers, the C++ entry points' parameter lists and calls, the copies of the scalar
settings into the params structs, the option bits, the structs' flags()) and docs/neuron.md's settings table
(scripts/generate_leaky_args.py writes both; the tests fail while either is stale). Checked: that the C++
sources use the generated macros, the params structs' members, the schemas torch.library registered (Triton,
native, CuPy ops), that the Python launchers and fakes take the arguments through ``bind`` (no hand-written
parameter list), and the gated / DTA ops' scalar settings. Each comparison is also run on a mutated copy of
what it parses, which it must reject (docs/neuron.md "The neuron's settings").
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import torch

from snnkernels import _ext
from snnkernels.ops import leaky, leaky_cupy
from snnkernels.ops.leaky_settings import (
    ALL_FLAGS,
    BWD_ARGS,
    BWD_OUTPUTS,
    CXX_HEADER,
    FLAG,
    FLAG_BITS,
    FWD_ARGS,
    FWD_OUTPUTS,
    LAUNCH_FLAGS,
    NEURON_SETTINGS,
    SCALAR_SETTINGS,
    Arg,
    bind,
    cxx_header,
    docs_table,
    flag_member,
    flag_word,
    kernel_scalars,
    names,
    op_schema,
    positional,
)

CSRC = Path(__file__).resolve().parents[2] / "csrc"
REGISTRATION = CSRC / "registration.cpp"
FLAGS_H = CSRC / "include" / "snnkernels" / "leaky_flags.h"
ARGS_H = CSRC.parent / CXX_HEADER
PARAMS_H = CSRC / "include" / "snnkernels" / "leaky_params.h"
NEURON_DOC = CSRC.parent / "docs" / "neuron.md"
COUNTED_OUTPUTS = (*FWD_OUTPUTS, "spike_counts")
# op pass -> (its arguments, its outputs, its params struct)
PASSES = {"fwd": (FWD_ARGS, FWD_OUTPUTS, "LeakyFwdParams"), "bwd": (BWD_ARGS, BWD_OUTPUTS, "LeakyBwdParams")}
# C++ functions taking an op's arguments in schema order (the generated SNNK_LEAKY_<FWD|BWD>_PARAMS / _ARGS):
# declarations, definitions and calls
CXX_ENTRY_POINTS = {
    "fwd": {
        "leaky/leaky_api.h": ("prepare_fwd",),
        "leaky/leaky_api.cpp": ("prepare_fwd", "leaky_fwd_native_cpu"),
        "leaky/leaky_api_cuda.cpp": ("prepare_fwd", "leaky_fwd_native_cuda"),
    },
    "bwd": {
        "leaky/leaky_api.h": ("prepare_bwd",),
        "leaky/leaky_api.cpp": ("prepare_bwd", "leaky_bwd_native_cpu"),
        "leaky/leaky_api_cuda.cpp": ("prepare_bwd", "leaky_bwd_native_cuda"),
    },
}


# ---------------------------------------------------------------------------------------------------------
# Parsers of the copies and comparisons with the definition; each comparison returns its mismatches.


def parse_schema(schema: str) -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str]]]:
    """``"(T a, T b=d) -> (T o)"`` -> ([(type, name, default)], [(type, name)])."""
    m = re.fullmatch(r"\((.*)\) -> \((.*)\)", schema)
    assert m, f"not a schema: {schema!r}"
    args = [_groups(r"(\S+)\s+(\w+)(?:=(\S+))?", a.strip()) for a in m.group(1).split(",")]
    outputs = [_groups(r"(\S+)\s+(\w+)", o.strip()) for o in m.group(2).split(",")]
    return args, outputs


def _groups(pattern: str, text: str) -> tuple:
    m = re.fullmatch(pattern, text)
    return m.groups() if m else (text,)  # unparsable: differs from every definition


def schema_mismatches(schema: str, args: tuple[Arg, ...], outputs: tuple[str, ...]) -> list[str]:
    """Differences of a schema string from the definition: names, types, order and defaults of the arguments,
    names of the (Tensor) outputs."""
    got_args, got_outputs = parse_schema(schema)
    want_args = [(a.type, a.name, a.default) for a in args]
    # a default is compared by value: torch prints the float 1.0 as "1."
    got_args = [
        (*g[:2], w[2]) if len(g) == 3 == len(w) and g[2] and w[2] and _value(g[2]) == _value(w[2]) else g
        for g, w in zip(got_args, want_args + [()] * len(got_args), strict=False)
    ]
    problems = [
        f"argument {i}: {got} != {want} (type, name, default)"
        for i, (got, want) in enumerate(zip(got_args, want_args, strict=False))
        if got != want
    ]
    if len(got_args) != len(want_args):
        problems.append(f"{len(got_args)} arguments, the definition has {len(want_args)}")
    if got_outputs != [("Tensor", o) for o in outputs]:
        problems.append(f"outputs {got_outputs} != {list(outputs)}")
    if not problems and _by_value(schema) != _by_value(op_schema(args, outputs)):
        problems.append("same arguments, different text (spacing)")
    return problems


def _by_value(schema: str) -> str:
    """``schema`` with each default written as its value's repr ("=1." and "=1.0" alike)."""
    return re.sub(r"=([^,)\s]+)", lambda m: f"={_value(m.group(1))!r}", schema)


def _value(default: str) -> object:
    try:
        return ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return default


def header_macros(source: str) -> dict[str, str]:
    """The ``#define NAME body`` macros of a header (continuation lines joined): name -> body."""
    joined = re.sub(r"\s*\\\n\s*", " ", source)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^#define (\w+(?:\(\w+\))?) ?(.*)$", joined, re.M)}


def registration_schemas(source: str, macros: dict[str, str]) -> dict[str, str]:
    """The ``m.def("name" MACRO)`` schemas of a TORCH_LIBRARY block: name -> schema (the macro's string)."""
    found = {}
    for name, macro in re.findall(r'm\.def\(\s*"(\w+)"\s+(\w+)\s*\)', source):
        found[name] = macros.get(macro, f"<no macro {macro}>").strip('"')
    return found


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def header_flag_bits(source: str) -> dict[str, int]:
    """leaky_flags.h's ``kName = 1u << bit`` enumerators as {snake_name: bit}."""
    return {camel_to_snake(n): int(b) for n, b in re.findall(r"\bk(\w+)\s*=\s*1u\s*<<\s*(\d+)", source)}


def flag_table_mismatches(header_bits: dict[str, int], table: dict[str, int], all_flags: int) -> list[str]:
    """The header's bits against a {name: 1 << bit} table (CuPy's FLAG) and its ALL_FLAGS."""
    want = {name: bit for bit, name in enumerate(FLAG_BITS)}
    problems = [] if header_bits == want else [f"leaky_flags.h has {header_bits}, FLAG_BITS say {want}"]
    if table != {n: 1 << b for n, b in want.items()}:
        problems.append(f"the flag table {table} does not follow FLAG_BITS")
    if all_flags != (1 << len(want)) - 1:
        problems.append(f"ALL_FLAGS = {all_flags:#x} does not cover the {len(want)} bits")
    return problems


def struct_body(source: str, struct: str) -> str:
    m = re.search(rf"struct {struct} \{{\n(.*?)\n\}};", source, re.DOTALL)
    assert m, f"struct {struct} not found"
    return m.group(1)


def struct_members(body: str) -> set[str]:
    """Member names of a struct body. Rule: drop // comments and member-function bodies ({...}); every
    ``;``-terminated piece without a ``(`` is a declaration ``type name [= init][, name [= init]]...``, each
    comma-separated declarator naming the last identifier before its ``=``."""
    body = re.sub(r"//[^\n]*", "", body)
    while re.search(r"\{[^{}]*\}", body):
        body = re.sub(r"\{[^{}]*\}", ";", body)
    members = set()
    for declaration in body.split(";"):
        if "(" in declaration or not declaration.strip():
            continue
        for declarator in declaration.split(","):
            members.add(re.findall(r"\w+", declarator.split("=")[0])[-1])
    return members


def flag_terms(text: str) -> dict[str, str]:
    """The ``(member ? kFlag : 0u)`` terms of a flags() expression: {flag: member}."""
    return {camel_to_snake(f): m for m, f in re.findall(r"\(\s*(\w+)\s*\?\s*k(\w+)\s*:\s*0u\s*\)", text)}


def params_mismatches(body: str, kernel: str, members_macro: str, flags_macro: str) -> list[str]:
    """Rule: every argument that pass ``kernel`` reads (Arg.reads) is a member of the pass's params struct with
    the same name; the setting members are the generated macro (``members_macro`` its text), written nowhere by
    hand; flags() is the generated macro, which sets exactly the bits of the flagged arguments the pass reads,
    each from a member the struct has."""
    args = PASSES[kernel][0]
    macro = f"SNNK_LEAKY_{kernel.upper()}_SETTING_MEMBERS"
    problems = [] if re.search(rf"^\s*{macro}\s*$", body, re.MULTILINE) else [f"the struct does not use {macro}"]
    by_hand = struct_members(body.replace(macro, ""))
    generated = struct_members(members_macro)
    problems += [f"member {m!r} written by hand and generated" for m in sorted(by_hand & generated)]
    members = by_hand | generated
    problems += [f"no member {a.name!r}" for a in args if kernel in a.reads and a.name not in members]
    name = f"SNNK_LEAKY_{kernel.upper()}_FLAGS"
    if not re.search(rf"unsigned int flags\(\) const \{{ return {name}; \}}", body):
        problems.append(f"flags() does not return {name}")
    terms = flag_terms(flags_macro)
    want_flags = {a.flag for a in args if kernel in a.reads and a.flag is not None}
    if set(terms) != want_flags:
        problems.append(f"{name} sets {sorted(terms)}, the definition {sorted(want_flags)}")
    problems += [f"{name} reads {m!r}, not a member" for m in terms.values() if m not in members]
    return problems


def parameter_lists(source: str, function: str) -> list[list[str]]:
    """The parameter (or argument) names of every ``function(...)`` in C++ source: per top-level comma-separated
    item, a ``/*name*/`` comment if it has one, else its last identifier."""
    lists = []
    for m in re.finditer(rf"\b{function}\(", source):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        items, depth, start, inner = [], 0, 0, source[m.end() : i - 1]
        for j, ch in enumerate(inner):
            depth += {"(": 1, "<": 1, ")": -1, ">": -1}.get(ch, 0)
            if ch == "," and depth == 0:
                items.append(inner[start:j])
                start = j + 1
        items.append(inner[start:])
        lists.append([(re.findall(r"/\*\s*(\w+)\s*\*/", it) or re.findall(r"\w+", it))[-1] for it in items])
    return lists


def docs_table_mismatches(markdown: str) -> list[str]:
    """docs/neuron.md's settings table against NEURON_SETTINGS: per row, in order, name, type, default (``-``:
    required), read by and flag (``-``: none)."""
    section = markdown.split("## The neuron's settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \| ([^|]+?) \| ([^|]+?) \| ([^|]+?) \|", section, re.MULTILINE)
    want = [(a.name, a.type, a.default or "-", ", ".join(a.reads), a.flag or "-") for a in NEURON_SETTINGS]
    return [] if rows == want else [f"rows {rows} != {want}"]


def signature_mismatches(fn) -> list[str]:
    """A launcher or fake takes the op's arguments as ``(*args, **kwargs)`` and binds them (leaky_settings.bind):
    a hand-written parameter list would be a copy of the definition that can drift."""
    kinds = [p.kind for p in inspect.signature(fn).parameters.values()]
    if kinds != [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
        return [f"{fn.__qualname__} spells out its parameters {list(inspect.signature(fn).parameters)}"]
    return [] if "bind(" in inspect.getsource(fn) else [f"{fn.__qualname__} does not bind its arguments"]


# ---------------------------------------------------------------------------------------------------------
# The comparisons on the real copies.


def test_definition_is_consistent():
    assert len(set(names(FWD_ARGS))) == len(FWD_ARGS) and len(set(names(BWD_ARGS))) == len(BWD_ARGS)
    assert FWD_ARGS[1:] == NEURON_SETTINGS
    assert set(SCALAR_SETTINGS) <= set(FWD_ARGS) & set(BWD_ARGS)
    for a in (*FWD_ARGS, *BWD_ARGS):
        assert a.type in ("Tensor", "Tensor?", "float", "bool", "int") and a.reads and set(a.reads) <= {"fwd", "bwd"}
        assert a.flag is None or (a.flag in FLAG_BITS and a.type in ("Tensor?", "bool")), a
    flagged = [a.flag for a in {*FWD_ARGS, *BWD_ARGS} if a.flag is not None]
    assert len(flagged) == len(set(flagged)) and set(flagged) | set(LAUNCH_FLAGS) == set(FLAG_BITS)


def test_schemas_are_generated_from_the_definition():
    assert schema_mismatches(leaky.FWD_SCHEMA, FWD_ARGS, FWD_OUTPUTS) == []
    assert schema_mismatches(leaky.BWD_SCHEMA, BWD_ARGS, BWD_OUTPUTS) == []
    assert schema_mismatches(leaky.COUNTED_FWD_SCHEMA, FWD_ARGS, COUNTED_OUTPUTS) == []
    assert leaky._FWD_ARGS == list(names(FWD_ARGS)) and leaky._BWD_ARGS == names(BWD_ARGS)


def test_generated_files_are_current():
    """scripts/generate_leaky_args.py has been run since the definition last changed."""
    assert ARGS_H.read_text() == cxx_header(), "run scripts/generate_leaky_args.py (then rebuild the extension)"
    assert docs_table() in NEURON_DOC.read_text(), "run scripts/generate_leaky_args.py"


def test_registration_cpp_schemas():
    found = registration_schemas(REGISTRATION.read_text(), header_macros(ARGS_H.read_text()))
    assert sorted(found) == ["leaky_bwd_native", "leaky_fwd_native"]
    assert schema_mismatches(found["leaky_fwd_native"], FWD_ARGS, FWD_OUTPUTS) == []
    assert schema_mismatches(found["leaky_bwd_native"], BWD_ARGS, BWD_OUTPUTS) == []
    # byte for byte what torch.library.define gets from Python
    assert found["leaky_fwd_native"] == leaky.FWD_SCHEMA and found["leaky_bwd_native"] == leaky.BWD_SCHEMA


def _registered(backend: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """op name -> (its argument set, its outputs) for a backend's registered leaky ops."""
    if backend == "triton":
        pytest.importorskip("triton")
        import snnkernels.ops.leaky_triton  # noqa: F401  (registers the ops)

        return {
            "leaky_fwd_triton": ("fwd", FWD_OUTPUTS),
            "leaky_bwd_triton": ("bwd", BWD_OUTPUTS),
            "leaky_fwd_counted_triton": ("fwd", COUNTED_OUTPUTS),
        }
    if backend == "native" and not _ext.load_native():
        pytest.skip(f"the native extension is not loadable: {_ext.native_status()}")
    return {f"leaky_fwd_{backend}": ("fwd", FWD_OUTPUTS), f"leaky_bwd_{backend}": ("bwd", BWD_OUTPUTS)}


@pytest.mark.parametrize("backend", ["triton", "native", "cupy"])
def test_registered_schemas(backend):
    for name, (kernel, outputs) in _registered(backend).items():
        schema = str(getattr(torch.ops.snnkernels, name).default._schema)
        prefix = f"snnkernels::{name}"
        assert schema.startswith(prefix + "(")
        assert schema_mismatches(schema.removeprefix(prefix), PASSES[kernel][0], outputs) == [], name


def test_flag_table():
    assert "enum LeakyFlag : unsigned int { SNNK_LEAKY_FLAG_ENUMERATORS };" in FLAGS_H.read_text()
    assert flag_table_mismatches(header_flag_bits(ARGS_H.read_text()), leaky_cupy.FLAG, leaky_cupy.ALL_FLAGS) == []
    assert leaky_cupy.FLAG is FLAG and leaky_cupy.ALL_FLAGS == ALL_FLAGS


@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_params_structs(kernel):
    body = struct_body(PARAMS_H.read_text(), PASSES[kernel][2])
    assert params_mismatches(body, kernel, _macro(kernel, "SETTING_MEMBERS"), _flags_macro(kernel)) == []


def _macro(kernel: str, what: str) -> str:
    return header_macros(ARGS_H.read_text())[f"SNNK_LEAKY_{kernel.upper()}_{what}"]


def _flags_macro(kernel: str) -> str:
    return _macro(kernel, "FLAGS")


def kernel_mismatches(kernel_source: str, launch_source: str, kernel: str) -> list[str]:
    """Rule: the CUDA kernel of pass ``kernel`` takes its value settings as the generated parameter list
    (``SNNK_LEAKY_<K>_KERNEL_SCALARS``) and every call passes them as the generated argument list, so that a
    setting joins both, and CuPy's arguments (``kernel_scalars``), without a hand edit; none of them is also
    spelt out by hand in the kernel's parameters."""
    k = kernel.upper()
    m = re.search(rf"leaky_{kernel}_kernel\((.*?)\) \{{", kernel_source, re.DOTALL)
    if not m:
        return [f"leaky_{kernel}_kernel not found"]
    params = re.sub(r"//[^\n]*", "", m.group(1))
    problems = (
        []
        if f"SNNK_LEAKY_{k}_KERNEL_SCALARS," in params
        else [f"the kernel does not take SNNK_LEAKY_{k}_KERNEL_SCALARS"]
    )
    problems += [
        f"the kernel spells out {a.name!r}" for a in kernel_scalars(kernel) if re.search(rf"\b{a.name}\b", params)
    ]
    calls = re.findall(rf"leaky_{kernel}_kernel<[^;]*?\)\s*;", launch_source)
    if not calls:
        problems.append(f"no call of leaky_{kernel}_kernel")
    problems += [
        f"a call does not pass SNNK_LEAKY_{k}_KERNEL_SCALAR_ARGS(p): {call[:80]}..."
        for call in calls
        if f"SNNK_LEAKY_{k}_KERNEL_SCALAR_ARGS(p)" not in call
    ]
    return problems


@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_cuda_kernel_value_settings(kernel):
    kernel_source = (CSRC / "leaky" / "leaky_kernel.cuh").read_text()
    # every place that calls the kernels: the CUDA launches and the C++ emulation test
    launch_source = "\n".join(
        (CSRC / f).read_text() for f in ("leaky/leaky_launch_impl.cuh", "tests/test_leaky_kernel_emu.cpp")
    )
    assert kernel_mismatches(kernel_source, launch_source, kernel) == []
    assert macro_names(_macro(kernel, "KERNEL_SCALARS")) == list(names(kernel_scalars(kernel)))
    mutated = kernel_source.replace(f"SNNK_LEAKY_{kernel.upper()}_KERNEL_SCALARS,", "float decay, float gain,")
    assert kernel_mismatches(mutated, launch_source, kernel)
    assert kernel_mismatches(kernel_source, launch_source.replace("_KERNEL_SCALAR_ARGS(p)", "_X(p)"), kernel)


@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_flag_word_matches_the_structs_flags(kernel):
    """CuPy's flag word (all options on) sets the bits the C++ params' flags() sets, plus the launch bits."""
    args = PASSES[kernel][0]
    on = {a.name: (object() if a.is_tensor else True) for a in args}
    from_struct = sum(FLAG[f] for f in flag_terms(_flags_macro(kernel)))
    assert flag_word(args, kernel, on) == from_struct
    assert flag_word(args, kernel, {a.name: (None if a.is_tensor else False) for a in args}) == 0


@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_cxx_entry_points(kernel):
    """Every entry point is declared / defined with the generated parameter list and called with the generated
    argument list, whose names are the definition's, in order."""
    macros = header_macros(ARGS_H.read_text())
    params, call = f"SNNK_LEAKY_{kernel.upper()}_PARAMS", f"SNNK_LEAKY_{kernel.upper()}_ARGS"
    assert macro_names(macros[params]) == list(names(PASSES[kernel][0]))
    assert macro_names(macros[call]) == list(names(PASSES[kernel][0]))
    for file, functions in CXX_ENTRY_POINTS[kernel].items():
        source = (CSRC / file).read_text()
        for function in functions:
            lists = parameter_lists(source, function)
            assert lists, f"{function} not found in {file}"
            assert all(got in ([params], [call]) for got in lists), (file, function, lists)


def macro_names(body: str) -> list[str]:
    """The last identifier of each comma-separated item of a parameter or argument list."""
    return [re.findall(r"\w+", item)[-1] for item in body.split(",")]


def test_docs_table():
    assert docs_table_mismatches(NEURON_DOC.read_text()) == []


def _python_copies():
    pytest.importorskip("triton")
    from snnkernels.ops import leaky_triton

    return {
        # CuPy's impls hand their arguments to the launch builders, which bind them
        "fwd": [leaky.fake_fwd, leaky_triton._fwd_impl, leaky_triton._counted_fwd_impl, leaky_cupy.fwd_launch],
        "bwd": [leaky.fake_bwd, leaky_triton._bwd_impl, leaky_cupy.bwd_launch],
    }


@pytest.mark.parametrize("kernel", ["fwd", "bwd"])
def test_python_launchers_and_fakes(kernel):
    for fn in _python_copies()[kernel]:
        assert signature_mismatches(fn) == []


def test_bind_follows_the_definition():
    required = [a for a in FWD_ARGS if a.default is None]  # the defaulted ones (store_v_seq, ...) come last
    values = tuple(range(len(required)))
    a = bind(FWD_ARGS, values)
    assert list(vars(a)) == list(names(FWD_ARGS)) and a.chunk == values[-1] and a.store_v_seq is False
    assert bind(BWD_ARGS, tuple(range(sum(b.default is None for b in BWD_ARGS)))).grad_v_seq is None
    assert bind(FWD_ARGS, values, {"store_v_seq": True}).store_v_seq is True
    with pytest.raises(TypeError, match="missing argument 'chunk'"):
        bind(FWD_ARGS, values[:-1])
    with pytest.raises(TypeError, match="at most"):
        bind(FWD_ARGS, (*values, *range(len(FWD_ARGS) - len(values) + 1)))
    with pytest.raises(TypeError, match="unexpected"):
        bind(FWD_ARGS, values, {"spare": 1})
    assert {a.name: flag_member(a) for a in FWD_ARGS if a.flag}["v_init"] == "has_v_init"
    by_name = dict(zip(names(FWD_ARGS), values, strict=False))
    assert positional(FWD_ARGS, **by_name) == values  # the inverse of bind, defaults left off
    with pytest.raises(TypeError, match="missing \\['chunk'\\]"):
        positional(FWD_ARGS, **{k: v for k, v in by_name.items() if k != "chunk"}, store_v_seq=True)


def _scalar_run(op_name: str) -> list[tuple[str, str]]:
    return [(a.name, str(a.type).lower()) for a in getattr(torch.ops.snnkernels, op_name).default._schema.arguments]


def test_gated_and_dta_scalar_settings():
    """The gated / DTA kernels take the scalar settings (SCALAR_SETTINGS) as one run, in their order: the
    forward the ones the forward pass reads, the backward all; ``neuron_settings`` makes the tuple."""
    pytest.importorskip("triton")
    import snnkernels.ops.dta_leaky_triton
    import snnkernels.ops.gated_leaky_triton  # noqa: F401
    from snnkernels.nn import MASNNLIFNode
    from snnkernels.nn.fused import neuron_settings

    def run(kernel: str) -> list[tuple[str, str]]:
        return [(a.name, a.type) for a in SCALAR_SETTINGS if kernel in a.reads]

    for family in ("gated_leaky", "dta_leaky"):
        for kernel in ("fwd", "bwd"):
            got, want = _scalar_run(f"{family}_{kernel}"), run(kernel)
            starts = [i for i in range(len(got)) if got[i : i + len(want)] == want]
            assert starts, (family, kernel, got)
    settings = neuron_settings(MASNNLIFNode())
    assert [type(v).__name__ for v in settings] == [a.type for a in SCALAR_SETTINGS]


# ---------------------------------------------------------------------------------------------------------
# Each comparison rejects a mutated copy.


def _swap(text: str, a: str, b: str) -> str:
    assert a in text and b in text
    return text.replace(a, "\0").replace(b, a).replace("\0", b)


SCHEMA_MUTATIONS = [
    lambda s: _swap(s, "float v_threshold", "float v_reset"),  # order
    lambda s: s.replace("bool strict", "int strict"),  # type
    lambda s: s.replace("store_v_seq=False", "store_v_seq=True"),  # default
    lambda s: s.replace("=None", ""),  # a default dropped
    lambda s: s.replace("bool hard_reset", "bool hard"),  # name
    lambda s: s.replace(", int chunk", ""),  # an argument dropped
    lambda s: s.replace("Tensor spikes", "Tensor spike"),  # an output
    lambda s: s.replace(", float", ",  float"),  # spacing
]


@pytest.mark.parametrize("mutate", range(len(SCHEMA_MUTATIONS)))
def test_schema_comparison_rejects_a_mutated_registration(mutate):
    found = registration_schemas(REGISTRATION.read_text(), header_macros(SCHEMA_MUTATIONS[mutate](ARGS_H.read_text())))
    problems = schema_mismatches(found["leaky_fwd_native"], FWD_ARGS, FWD_OUTPUTS) + schema_mismatches(
        found["leaky_bwd_native"], BWD_ARGS, BWD_OUTPUTS
    )
    assert problems


def test_registered_schema_comparison_rejects_a_mutation():
    schema = str(torch.ops.snnkernels.leaky_fwd_cupy.default._schema).removeprefix("snnkernels::leaky_fwd_cupy")
    assert schema_mismatches(schema, FWD_ARGS, FWD_OUTPUTS) == []
    assert schema_mismatches(_swap(schema, "bool training", "bool store_final_state"), FWD_ARGS, FWD_OUTPUTS)


@pytest.mark.parametrize(
    "mutation",
    [
        lambda h, t, n: (h.replace("1u << 16", "1u << 17"), t, n),  # a bit moved in the header
        lambda h, t, n: (h.replace("kStrict", "kStrictly"), t, n),  # a bit renamed
        lambda h, t, n: (h, {**t, "strict": 1 << 4}, n),  # the table's bit differs
        lambda h, t, n: (h, t, n >> 1),  # ALL_FLAGS misses a bit
    ],
)
def test_flag_comparison_rejects_a_mutation(mutation):
    header, table, all_flags = mutation(ARGS_H.read_text(), dict(leaky_cupy.FLAG), leaky_cupy.ALL_FLAGS)
    assert flag_table_mismatches(header_flag_bits(header), table, all_flags)


@pytest.mark.parametrize(
    "kernel, mutation",
    [
        ("fwd", lambda s, m, f: (s, m.replace("bool store_final_state = false;", ""), f)),  # a member dropped
        ("fwd", lambda s, m, f: (s, m.replace("float v_reset = 0.f;", "float reset = 0.f;"), f)),  # renamed
        ("fwd", lambda s, m, f: (s.replace("  SNNK_LEAKY_FWD_SETTING_MEMBERS\n", "  float decay = 1.f;\n"), m, f)),
        ("fwd", lambda s, m, f: (s.replace("  ElementType dtype", "  float gain = 1.f;\n  ElementType dtype"), m, f)),
        ("fwd", lambda s, m, f: (s, m, f.replace(" | (store_v_seq ? kStoreVSeq : 0u)", ""))),  # flags() misses a bit
        ("fwd", lambda s, m, f: (s.replace("return SNNK_LEAKY_FWD_FLAGS;", "return 0u;"), m, f)),  # flags() by hand
        ("bwd", lambda s, m, f: (s, m.replace("int surrogate_id = 0;", "int surrogate = 0;"), f)),
        (
            "bwd",
            lambda s, m, f: (s, m, f.replace("(detach_reset ? kDetachReset : 0u)", "(detach_reset ? kStrict : 0u)")),
        ),
        ("bwd", lambda s, m, f: (s, m, f.replace("(has_grad_v_seq ?", "(grad_v_seq_given ?"))),  # not a member
    ],
)
def test_params_comparison_rejects_a_mutation(kernel, mutation):
    source, members, flags = PARAMS_H.read_text(), _macro(kernel, "SETTING_MEMBERS"), _flags_macro(kernel)
    mutated = mutation(source, members, flags)
    assert mutated != (source, members, flags)
    assert params_mismatches(struct_body(mutated[0], PASSES[kernel][2]), kernel, *mutated[1:])


def test_entry_point_comparison_rejects_a_mutation():
    source = (CSRC / "leaky" / "leaky_api.cpp").read_text()
    mutated = source.replace("prepare_fwd(SNNK_LEAKY_FWD_PARAMS)", "prepare_fwd(const at::Tensor& x, double decay)")
    assert parameter_lists(mutated, "prepare_fwd")[0] == ["x", "decay"]
    macros = header_macros(_swap(ARGS_H.read_text(), "surrogate_id", "surrogate_param"))
    assert macro_names(macros["SNNK_LEAKY_BWD_PARAMS"]) != list(names(BWD_ARGS))


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: _swap(d, "| `gain` | `float`", "| `bias` | `float`"),  # order
        lambda d: d.replace("| `store_v_seq` | `bool` | False |", "| `store_v_seq` | `bool` | - |"),  # default
        lambda d: d.replace("| `detach_reset` | `bool` | - | bwd |", "| `detach_reset` | `bool` | - | fwd, bwd |"),
        lambda d: d.replace("| `chunk` | `int` |", "| `chunk` | `float` |"),  # type
    ],
)
def test_docs_table_comparison_rejects_a_mutation(mutation):
    source = NEURON_DOC.read_text()
    mutated = mutation(source)
    assert mutated != source and docs_table_mismatches(mutated)


def test_signature_comparison_rejects_a_mutation():
    def spelled_out(x, v_init, decay_t, gain_t, bias_t, *rest):
        pass

    def unbound(*args, **kwargs):
        return args, kwargs

    assert signature_mismatches(spelled_out)
    assert signature_mismatches(unbound)


def test_scalar_run_comparison_rejects_a_mutation():
    pytest.importorskip("triton")
    import snnkernels.ops.gated_leaky_triton  # noqa: F401

    got = _scalar_run("gated_leaky_bwd")
    want = [(a.name, a.type) for a in SCALAR_SETTINGS]
    mutated = [*got]
    i = mutated.index(("v_threshold", "float"))
    mutated[i], mutated[i + 1] = mutated[i + 1], mutated[i]
    assert any(got[i : i + len(want)] == want for i in range(len(got)))
    assert not any(mutated[i : i + len(want)] == want for i in range(len(mutated)))
