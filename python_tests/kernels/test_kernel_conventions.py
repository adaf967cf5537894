"""Static checks (``ast`` over the sources, no Triton needed) of two Triton conventions of CONTRIBUTING.md:

- every launchable ``@triton.jit`` kernel under ``snnkernels/kernels/triton/`` that takes the time length
  ``T`` lists it in ``do_not_specialize``: T is a run-time loop bound, and a specialised T would compile
  one variant per divisibility class of the sequence length;
- every Triton launch ``kernel[grid](...)`` under ``snnkernels/ops/`` passes ``**COMPILE_OPTIONS``
  (``enable_fp_fusion=False``: the exactness contract of the charge, see snnkernels/kernels/triton/leaky.py).

Each check returns its offenders as ``file:line: what``; the synthetic sources below prove that each can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "snnkernels" / "kernels" / "triton"
OPS = ROOT / "snnkernels" / "ops"


def _is_jit(decorator: ast.expr) -> bool:
    """``@triton.jit``, ``@jit``, or either called with options."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Attribute) and target.attr == "jit") or (
        isinstance(target, ast.Name) and target.id == "jit"
    )


def _do_not_specialize(decorator: ast.expr, arg_names: list[str]) -> set[str]:
    """The argument names a jit decorator excludes from specialisation (given by name or by position)."""
    if not isinstance(decorator, ast.Call):
        return set()
    names = set()
    for kw in decorator.keywords:
        if kw.arg == "do_not_specialize" and isinstance(kw.value, (ast.List, ast.Tuple)):
            for item in kw.value.elts:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    names.add(item.value)
                elif isinstance(item, ast.Constant) and isinstance(item.value, int) and item.value < len(arg_names):
                    names.add(arg_names[item.value])
    return names


def unspecialized_t_offenders(source: str, filename: str) -> list[str]:
    """Launchable jit kernels (named ``*_kernel``, the project's convention for what ops/ launches; other jit
    functions are device helpers, inlined into and specialised with their caller) that take ``T`` without listing
    it in ``do_not_specialize``."""
    offenders = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.FunctionDef):
            continue
        jits = [d for d in node.decorator_list if _is_jit(d)]
        if not jits or not node.name.endswith("_kernel"):
            continue
        arg_names = [a.arg for a in node.args.posonlyargs + node.args.args]
        if "T" in arg_names and not any("T" in _do_not_specialize(d, arg_names) for d in jits):
            offenders.append(f'{filename}:{node.lineno}: {node.name} takes T without do_not_specialize=["T"]')
    return offenders


def _spreads_compile_options(call: ast.Call) -> bool:
    return any(
        kw.arg is None
        and any(
            isinstance(n, ast.Name)
            and n.id == "COMPILE_OPTIONS"
            or isinstance(n, ast.Attribute)
            and n.attr == "COMPILE_OPTIONS"
            for n in ast.walk(kw.value)
        )
        for kw in call.keywords
    )


def _launches(tree: ast.AST) -> list[ast.Call]:
    """Calls of a subscript, ``kernel[grid](...)``: the only ones in ops/ are Triton launches."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript)]


def launch_offenders(source: str, filename: str) -> list[str]:
    """Launches ``kernel[grid](...)`` without ``**COMPILE_OPTIONS``."""
    return [
        f"{filename}:{node.lineno}: {ast.unparse(node.func)}(...) does not pass **COMPILE_OPTIONS"
        for node in _launches(ast.parse(source, filename))
        if not _spreads_compile_options(node)
    ]


def _scan(folder: Path, check) -> tuple[list[str], int]:
    files = sorted(folder.glob("*.py"))
    offenders = [o for p in files for o in check(p.read_text(), str(p.relative_to(ROOT)))]
    return offenders, len(files)


def test_kernels_taking_t_do_not_specialize_it():
    offenders, n_files = _scan(KERNELS, unspecialized_t_offenders)
    assert n_files > 5, f"no kernel sources found under {KERNELS}"
    assert not offenders, "kernels that take T must list it in do_not_specialize:\n" + "\n".join(offenders)


def test_triton_launches_pass_compile_options():
    offenders, n_files = _scan(OPS, launch_offenders)
    launches = sum(len(_launches(ast.parse(p.read_text()))) for p in OPS.glob("*.py"))
    assert n_files > 5 and launches > 10, f"found {launches} launches in {n_files} files under {OPS}"
    assert not offenders, "Triton launches must pass **COMPILE_OPTIONS:\n" + "\n".join(offenders)


_KERNELS_SOURCE = """
import triton
import triton.language as tl
from triton import jit


@triton.jit(do_not_specialize=["T"])
def good_fwd_kernel(x_ptr, T, N, BLOCK: tl.constexpr):
    pass


@triton.jit(do_not_specialize=[1])
def good_by_position_kernel(x_ptr, T, N):
    pass


@triton.jit
def _helper(x, T):
    pass


@triton.jit
def bad_fwd_kernel(x_ptr, T, N, BLOCK: tl.constexpr):
    pass


@jit(do_not_specialize=["N"])
def bad_other_arg_kernel(x_ptr, T, N):
    pass


@triton.jit
def public_helper(x, T):
    pass


@triton.jit
def _bad_private_kernel(x_ptr, T):
    pass


@triton.jit
def no_time_kernel(x_ptr, N):
    pass
"""


def test_do_not_specialize_check_finds_offenders():
    assert unspecialized_t_offenders(_KERNELS_SOURCE, "k.py") == [
        'k.py:23: bad_fwd_kernel takes T without do_not_specialize=["T"]',
        'k.py:28: bad_other_arg_kernel takes T without do_not_specialize=["T"]',
        'k.py:38: _bad_private_kernel takes T without do_not_specialize=["T"]',
    ]


_OPS_SOURCE = """
from .leaky_triton import COMPILE_OPTIONS
from . import leaky_triton


def launch(x, grid, kernel, constexprs):
    kernel[grid](x, BLOCK=128, num_warps=4, **COMPILE_OPTIONS)
    kernel[grid](x, **constexprs, **leaky_triton.COMPILE_OPTIONS)
    kernel[grid](x, BLOCK=128, num_warps=4)
    kernel[(1,)](x, enable_fp_fusion=False, **constexprs)
"""


def test_compile_options_check_finds_offenders():
    assert launch_offenders(_OPS_SOURCE, "ops.py") == [
        "ops.py:9: kernel[grid](...) does not pass **COMPILE_OPTIONS",
        "ops.py:10: kernel[1,](...) does not pass **COMPILE_OPTIONS",
    ]
