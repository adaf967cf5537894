"""Compile the time-loop Triton kernels as their launchers launch them and read the sm_90 SASS of the main loop.

No GPU needed and nothing runs: ``JITFunction.run`` is replaced by a recorder, the launchers are called on
(lazily allocated) CPU tensors of the given shapes without ``TRITON_INTERPRET``, so each picks its GPU tile,
warps and flags by its own code; Triton's own binder then specialises the recorded arguments for a CUDA
target (16-byte aligned pointers and ints divisible by 16 get ``tt.divisibility``, as the JIT does), and the
kernel is compiled for sm_90 (or the given arch) and read with the ``cuobjdump`` Triton bundles.

Per launch it prints: registers, spill bytes (LOCAL), shared memory, and for the main loop (the loop,
i.e. backward branch, with the most global loads and stores) the order of its global loads (L) and stores (S),
the number of load stages (maximal runs of loads not separated by a store: each costs about one memory
latency per iteration, since without ``noalias`` a load cannot move above an earlier store), and the widths of
its loads and stores in bytes per thread.

Usage: ``python scripts/sass_stages.py [--arch 90] [--only SUBSTRING] [--sass DIR]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.jit import JITFunction, create_function_from_signature  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
RECORDED: list[tuple] = []


def _record(self, *args, grid, warmup, **kwargs):
    RECORDED.append((self, args, dict(kwargs), grid))


def capture(call) -> list[tuple]:
    """The launches ``call()`` makes: (kernel, args, kwargs, grid)."""
    RECORDED.clear()
    saved = JITFunction.run
    JITFunction.run = _record
    try:
        call()
    except Exception:
        # host code after a launch may trip over outputs no kernel wrote; the launches before it count
        if not RECORDED:
            raise
    finally:
        JITFunction.run = saved
    return list(RECORDED)


def compile_launch(fn, args, kwargs, arch: int):
    """The kernel compiled as the JIT would for ``arch``, from a recorded launch."""
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    src = ASTSource(fn, signature, constexprs, attrs)
    return triton.compile(src, target=target, options=options.__dict__)


def _cuobjdump(cubin: bytes, flag: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([CUOBJDUMP, flag, f.name], capture_output=True, text=True, check=True).stdout


_INSN = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?);")


def main_loop(sass: str) -> list[str]:
    """The instructions of the loop (backward branch) with the most global loads and stores."""
    insns = [(int(a, 16), text) for a, text in _INSN.findall(sass)]
    best: list[str] = []
    for addr, text in insns:
        m = re.search(r"\bBRA\b.*?(?:`\(\.L_x_\d+\)|0x([0-9a-f]+))", text)
        if not m or "BRA" not in text:
            continue
        label = re.search(r"`\((\.L_x_\d+)\)", text)
        if label:
            # cuobjdump prints labels as `(.L_x_N); find the label's address
            lm = re.search(r"^\s*" + re.escape(label.group(1)) + r":\s*\n\s*/\*([0-9a-f]+)\*/", sass, re.M)
            if not lm:
                continue
            target = int(lm.group(1), 16)
        else:
            target = int(m.group(1), 16)
        if target >= addr:
            continue
        body = [t for a, t in insns if target <= a <= addr]
        mem = sum(1 for t in body if re.search(r"\b(LDG|STG)\b", t))
        if mem > sum(1 for t in best if re.search(r"\b(LDG|STG)\b", t)) or (
            mem == sum(1 for t in best if re.search(r"\b(LDG|STG)\b", t)) and len(body) < len(best)
        ):
            best = body
    return best


def _width(text: str) -> int:
    opcode = re.search(r"\b(LDG|STG)(\.\S+)?", text).group(0)
    m = re.search(r"\.(128|64|U8|S8|U16|S16)\b", opcode)
    return {"128": 16, "64": 8, "U8": 1, "S8": 1, "U16": 2, "S16": 2}[m.group(1)] if m else 4


def loop_summary(body: list[str]) -> dict:
    order = "".join("L" if re.search(r"\bLDG\b", t) else "S" for t in body if re.search(r"\b(LDG|STG)\b", t))
    loads = Counter(_width(t) for t in body if re.search(r"\bLDG\b", t))
    stores = Counter(_width(t) for t in body if re.search(r"\bSTG\b", t))
    return {
        "order": order,
        "stages": len([r for r in order.split("S") if r]),
        "loads": " ".join(f"{n}x{w}B" for w, n in sorted(loads.items(), reverse=True)),
        "stores": " ".join(f"{n}x{w}B" for w, n in sorted(stores.items(), reverse=True)),
        "bar": sum(1 for t in body if re.search(r"\bBAR\b", t)),
    }


def report(name: str, call, arch: int, sass_dir: str | None) -> None:
    for fn, args, kwargs, grid in capture(call):
        compiled = compile_launch(fn, args, kwargs, arch)
        cubin = compiled.asm["cubin"]
        res = dict(re.findall(r"(REG|STACK|LOCAL|SHARED):(\d+)", _cuobjdump(cubin, "-res-usage")))
        sass = _cuobjdump(cubin, "-sass")
        if sass_dir:
            Path(sass_dir).mkdir(parents=True, exist_ok=True)
            Path(sass_dir, f"{name}.{fn.__name__}.sass").write_text(sass)
        loop = loop_summary(main_loop(sass))
        tile = {k: v for k, v in kwargs.items() if k.startswith("BLOCK")}
        print(
            f"{name:28s} {fn.__name__:26s} grid={tuple(grid) if not callable(grid) else grid} "
            f"warps={kwargs.get('num_warps')} tile={tile} regs={res.get('REG')} local={res.get('LOCAL')} "
            f"stack={res.get('STACK')} | loop loads {loop['loads']} / stores {loop['stores']}, "
            f"stages {loop['stages']}, bar {loop['bar']}, order {loop['order']}",
            flush=True,
        )


def _e(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype)


def _dtype_cases(d: torch.dtype, tag: str) -> dict:
    """The time-loop launches in dtype ``d``: LIF (T = 8, 4M neurons a step), TCJA's gated neuron at
    (8, 32, 128, 32, 32), DTA-LIF at (4, 64, 64, 32, 32)."""
    from snnkernels.ops import dta_leaky_triton as dl
    from snnkernels.ops import gated_leaky_triton as gl
    from snnkernels.ops import leaky_triton as lt
    from snnkernels.surrogate import ATan, Sigmoid

    e = _e
    x = (8, 32, 128, 32, 32)
    n = (0.5, 0.5, 0.0, 1.0, 0.0, 0.0, True, False)  # the LIF: tau 2, hard reset
    s = (0.5, 1.0, 0.0, 1.0, 0.0, 0.0)
    y = (4, 64, 64, 32, 32)
    return {
        f"lif_fwd_{tag}": lambda: lt.leaky_fwd_triton(
            e(*x, dtype=d), None, None, None, None, *n, False, 0, 2.0, True, False, 8
        ),
        f"lif_counted_fwd_{tag}": lambda: lt.leaky_fwd_counted_triton(
            e(*x, dtype=d), None, None, None, None, *n, False, 0, 2.0, True, False, 8
        ),
        f"lif_bwd_{tag}": lambda: lt.leaky_bwd_triton(
            e(*x, dtype=d),
            None,
            e(*x, dtype=d),
            None,
            e(0, 1),
            None,
            None,
            None,
            *n,
            False,
            ATan.id,
            2.0,
            8,
            False,
            False,
            False,
            False,
        ),  # fmt: skip
        f"leaky_channel_bwd_{tag}": lambda: lt.leaky_bwd_triton(
            e(*x, dtype=d),
            None,
            e(*x, dtype=d),
            None,
            e(0, 1),
            e(128),
            e(128),
            None,
            *n,
            False,
            ATan.id,
            2.0,
            8,
            False,
            True,
            True,
            False,
        ),  # fmt: skip
        f"leaky_all_flags_bwd_{tag}": lambda: lt.leaky_bwd_triton(
            e(*x, dtype=d),
            e(*x[1:]),
            e(*x, dtype=d),
            e(*x[1:]),
            e(0, 1),
            e(128),
            e(128),
            e(128),
            *n,
            True,
            ATan.id,
            2.0,
            8,
            True,
            True,
            True,
            True,
            e(*x),
        ),  # fmt: skip
        f"lif_state_bwd_{tag}": lambda: lt.leaky_bwd_triton(
            e(*x, dtype=d),
            e(*x[1:]),
            e(*x, dtype=d),
            e(*x[1:]),
            e(0, 1),
            None,
            None,
            None,
            *n,
            True,
            ATan.id,
            2.0,
            8,
            True,
            False,
            False,
            False,
            e(*x),
        ),  # fmt: skip
        f"gated_tcja_fwd_{tag}": lambda: gl.gated_leaky_fwd(
            e(*x, dtype=d), e(8, 32, 128), None, False, *s, True, False, True, 8, True
        ),
        f"gated_tcja_bwd_{tag}": lambda: gl.gated_leaky_bwd(
            e(*x, dtype=d),
            e(*x, dtype=d),
            e(8, 32, 128),
            None,
            e(0, 1),
            False,
            *s,
            True,
            False,
            False,
            Sigmoid.id,
            4.0,
            8,
        ),  # fmt: skip
        f"dta_leaky_fwd_{tag}": lambda: dl.dta_leaky_fwd(
            e(*y, dtype=d), e(*y, dtype=d), e(4, 64, 64), e(4, 64, 64), e(4, 64, 64), *s, True, False, True, 8, False
        ),
        f"dta_leaky_bwd_{tag}": lambda: dl.dta_leaky_bwd(
            e(*y, dtype=d),
            e(*y, dtype=d),
            e(*y, dtype=d),
            e(4, 64, 64),
            e(4, 64, 64),
            e(4, 64, 64),
            e(0, 1),
            *s,
            True,
            False,
            False,
            ATan.id,
            2.0,
            8,
        ),  # fmt: skip
    }


def cases() -> dict:
    """name -> launcher call at the benchmark shapes (docs/neuron.md, bench/NOTES.md)."""
    from snnkernels.ops import gated_leaky_triton as gl
    from snnkernels.surrogate import ATan

    e = _e
    out = {**_dtype_cases(torch.float32, "fp32"), **_dtype_cases(torch.bfloat16, "bf16")}
    m = (60, 16, 128, 8, 8)
    s = (0.5, 1.0, 0.0, 1.0, 0.0, 0.0)
    out["gated_masnn_fwd_fp32"] = lambda: gl.gated_leaky_fwd(
        e(*m), e(60, 16, 128), e(16, 64), True, *s, True, False, True, 8, False
    )
    out["gated_masnn_bwd_fp32"] = lambda: gl.gated_leaky_bwd(
        e(*m), e(*m), e(60, 16, 128), e(16, 64), e(0, 1), True, *s, True, False, False, ATan.id, 2.0, 8
    )
    from snnkernels.ops import ma_snn_triton as ma

    for shape in ((60, 16, 128, 8, 8), (60, 16, 64, 32, 32)):
        tag = "x".join(map(str, shape[3:]))
        T, B, C = shape[:3]
        out[f"ma_pixel_stats_{tag}"] = lambda sh=shape, T=T, B=B, C=C: ma.pixel_stats(e(*sh), e(T, B, C))
        out[f"ma_bwd_pixel_sums_{tag}"] = lambda sh=shape, T=T, B=B, C=C: ma.bwd_pixel_sums(
            e(*sh), e(*sh), e(T, B, C), e(B, sh[3] * sh[4])
        )
    from snnkernels.ops import bn_lif_triton as bl

    x = (8, 32, 128, 32, 32)
    c = [e(128) for _ in range(6)]
    out["bn_lif_fwd_fp32"] = lambda: bl.bn_lif_fwd(e(*x), *c[:5], 1.0, 0.0, 0.0, True, False, True, 8)
    out["bn_lif_bwd_fp32"] = lambda: bl.bn_lif_bwd(
        e(*x), e(*x), *c, e(128), e(0, 1), 1.0, 0.0, 0.0, True, False, False, ATan.id, 2.0, 8, True, True, True, True
    )
    from snnkernels.ops import global_context_triton as gc

    for C, H in ((512, 8), (64, 32)):  # STAA's ResNet widths: (4, 64, C, H, H)
        x = (4, 64, C, H, H)
        out[f"gc_context_fwd_C{C}"] = lambda x=x: gc.gc_context_fwd(e(*x), e(x[2]))
        out[f"gc_context_bwd_C{C}"] = lambda x=x: gc.gc_context_bwd(e(*x[:3]), e(*x), e(x[2]), e(*x[:3]), e(4, 64, 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--only", default="")
    parser.add_argument("--sass", default=None, help="folder to write each kernel's SASS to")
    args = parser.parse_args()
    for name, call in cases().items():
        if args.only in name:
            report(name, call, args.arch, args.sass)


if __name__ == "__main__":
    main()
