"""Every Triton kernel variant compiles for sm_80 and sm_90 (no GPU needed), without spills and without
contracted multiply-adds (the exactness contract of the charge; see snnkernels/kernels/triton/leaky.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snnkernels.ops.registry import REGISTRY
from snnkernels.surrogate import SURROGATE_IDS

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]


def _registered_kernels() -> set[str]:
    """The Triton kernels of every registered op (snnkernels/ops/registry.py) that triton_aot.py compiles."""
    return {k for e in REGISTRY for k in e.kernels if k not in e.aot_exempt}


def test_aot_cases_cover_every_registered_kernel():
    """triton_aot.py's variants name exactly the registry's kernels (no compilation: runs everywhere)."""
    import triton_aot  # python_tests/ is on the path, as for conftest

    assert {fn.__name__ for fn, *_ in triton_aot.all_cases()} == _registered_kernels()


@pytest.fixture(scope="module")
def compiled_variants() -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "python_tests" / "kernels" / "triton_aot.py"), arch],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for arch in ("80", "90")
    ]
    rows = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)  # each compiles ~190 variants (+ the template capture)
        assert proc.returncode == 0, f"AOT compilation failed:\n{err[-4000:]}"
        rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows


def test_all_variants_compiled(compiled_variants):
    archs = {r["arch"] for r in compiled_variants}
    kernels = {r["kernel"] for r in compiled_variants}
    assert archs == {80, 90}
    assert kernels == _registered_kernels()
    surrogates = {r["flags"]["SG_ID"] for r in compiled_variants if r["kernel"] == "leaky_bwd_kernel"}
    assert surrogates == set(SURROGATE_IDS)
    assert {r["dtype"] for r in compiled_variants} == {"fp32", "fp16", "bf16"}


def test_no_register_spills(compiled_variants):
    spilled = [r for r in compiled_variants if r.get("local", 0) > 0]
    assert not spilled, f"kernels spill to local memory: {spilled}"


def test_no_contracted_fma(compiled_variants):
    fused = [(r["kernel"], r["arch"], r["dtype"]) for r in compiled_variants if r["contracted_fma"]]
    assert not fused, f"fp32 fma in PTX (launch option enable_fp_fusion lost?): {fused}"


def test_variants_compile_as_launched(compiled_variants):
    """Every kernel a template case launches is compiled with a launch's specialisation (triton_aot.py
    TEMPLATE_CASES); only the TCSA step kernels keep the hand-written signature."""
    hand = {r["kernel"] for r in compiled_variants if r["signature"] == "hand"}
    assert hand <= {"tcsa_step_fwd_kernel", "tcsa_step_bwd_kernel"}, hand
