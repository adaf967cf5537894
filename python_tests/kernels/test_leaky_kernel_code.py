"""What the Triton compiler makes of the leaky kernels (no GPU needed: compiled for sm_80 in a subprocess, without
the interpreter):

- the membrane sequence costs nothing unless asked: the forward launched without ``STORE_V_SEQ`` has exactly the
  stores of the kernel before it existed (spikes each step, a checkpoint per chunk, the final state) and the
  backward without ``HAS_GRAD_V_SEQ`` exactly its loads; with them, one more store / load per step. A run-time
  branch instead of a constexpr would leave the extra store in the default kernel and fail here.
- the charge keeps its ``v - v`` term (docs/neuron.md "Non-finite values"): a compiler that folded it to 0
  would silently give +-inf where the other backends give NaN.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, re
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from snnkernels.kernels.triton.leaky import leaky_bwd_kernel, leaky_fwd_kernel
from snnkernels.ops.leaky_triton import COMPILE_OPTIONS, DEFAULT_CHUNK, launch_config

INT_ARGS = {"T", "N", "S", "C"}


def compile_kernel(fn, constexprs, warps):
    sig = {n: "constexpr" if n in constexprs else ("*fp32" if n.endswith("_ptr") else ("i32" if n in INT_ARGS
           else "fp32")) for n in fn.arg_names}
    src = ASTSource(fn, signature=sig, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", 80, 32), options=dict(COMPILE_OPTIONS, num_warps=warps))


def counts(compiled):
    ttir = compiled.asm["ttir"]
    # v - v: a subtraction of a register from itself (the charge's NaN term)
    self_sub = re.findall(r"sub(?:\.rn)?\.f32\s+%\w+,\s*(%\w+),\s*\1;", compiled.asm["ptx"])
    return {"stores": len(re.findall(r"\btt\.store\b", ttir)), "loads": len(re.findall(r"\btt\.load\b", ttir)),
            "self_sub": len(self_sub)}


fwd = dict(HAS_V_INIT=False, DECAY_T=False, GAIN_T=False, BIAS_T=False, HARD_RESET=True, STRICT=False,
           TRAINING=True, STORE_FINAL=True, CHUNK=DEFAULT_CHUNK)
bwd = dict(HAS_V_INIT=False, HAS_GRAD_V_FINAL=False, STORE_GRAD_V_INIT=False, DECAY_T=False, GAIN_T=False,
           BIAS_T=False, NEED_GRAD_DECAY=False, NEED_GRAD_GAIN=False, NEED_GRAD_BIAS=False, HARD_RESET=True,
           STRICT=False, DETACH_RESET=False, SG_ID=0, CHUNK=DEFAULT_CHUNK)
for name, fn, flags, flag, backward in (("fwd", leaky_fwd_kernel, fwd, "STORE_V_SEQ", False),
                                        ("bwd", leaky_bwd_kernel, bwd, "HAS_GRAD_V_SEQ", True)):
    cfg = launch_config(1 << 22, backward=backward)
    for on in (False, True):
        constexprs = dict(flags, BLOCK=cfg.block, **{flag: on})
        print(json.dumps({"kernel": name, "v_seq": on, **counts(compile_kernel(fn, constexprs, cfg.num_warps))}))
"""


@pytest.fixture(scope="module")
def kernel_code() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"compilation failed:\n{proc.stderr[-4000:]}"
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {(r["kernel"], r["v_seq"]): r for r in rows}


def test_forward_without_v_seq_has_no_extra_store(kernel_code):
    from snnkernels.ops.leaky_triton import DEFAULT_CHUNK

    # spikes at each of the chunk's steps, the chunk's checkpoint, the final state
    assert kernel_code[("fwd", False)]["stores"] == DEFAULT_CHUNK + 2
    assert kernel_code[("fwd", True)]["stores"] == 2 * DEFAULT_CHUNK + 2
    assert kernel_code[("fwd", True)]["loads"] == kernel_code[("fwd", False)]["loads"]


def test_backward_without_grad_v_seq_has_no_extra_load(kernel_code):
    from snnkernels.ops.leaky_triton import DEFAULT_CHUNK

    # x and dL/ds at each of the chunk's steps, the chunk's checkpoint
    assert kernel_code[("bwd", False)]["loads"] == 2 * DEFAULT_CHUNK + 1
    assert kernel_code[("bwd", True)]["loads"] == 3 * DEFAULT_CHUNK + 1
    assert kernel_code[("bwd", True)]["stores"] == kernel_code[("bwd", False)]["stores"]


def test_charge_keeps_its_nan_term(kernel_code):
    """Every charge (each step of the forward; each recompute, and each v_{t-1} rebuilt, in the backward) keeps
    the subtraction v - v in the PTX."""
    for key, row in kernel_code.items():
        assert row["self_sub"] > 0, (key, row)
