"""The static GPU report at the benchmark shapes (bench/static_report.py; docs/static_report.md): the Triton
launches the benchmarks really make, compiled for sm_90 as the JIT specialises them and read from the cubin.

Fails on a spill, on a time-loop kernel with more than one load stage per chunk (its loads must not wait on
the previous step's stores), on a case that moves more bytes than its byte model, on a launch estimated above
1.15x its H100 floor, and on a case that cannot be captured. Runs the CI subset
(``bench.static_launches.ci_cases``: each benchmark op's first shape in
fp32, the LIF in bf16 too) in a subprocess without the interpreter, which would otherwise pick its own
tiles.
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

# Time-loop kernels the benchmark cases launch, and those whose main loop today issues each step's loads
# after the previous step's stores (several load stages per chunk). Remove a kernel from STAGED when its
# loads are issued before the chunk's stores: the strict xfail then fails until it is removed.
TIME_LOOP = (
    "leaky_fwd_kernel",
    "leaky_bwd_kernel",
    "leaky_fwd_packed_kernel",
    "gated_leaky_fwd_kernel",
    "gated_leaky_bwd_kernel",
    "dta_leaky_fwd_kernel",
    "dta_leaky_bwd_kernel",
)
STAGED: dict[str, str] = {}  # none today: every time-loop kernel loads its chunk before its stores

# Kernels that spill today at the CI shapes (remove one when it stops: its strict xfail then fails).
SPILLED: dict[str, str] = {}  # none today

# Kernels estimated above ESTIMATE_SLACK x their H100 floor today at the CI shapes (remove one when it is not:
# its strict xfail then fails).
SLOW: dict[str, str] = {}  # none today


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("static")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "bench.static_report", "--ci", "--no-cuda", "--out", str(out), "--tag", "ci"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    files = list(out.glob("*_ci.json"))
    assert files, f"no report written (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(files[0].read_text())


def test_cuda_flags_are_the_builds():
    from bench.static_report import NVCC_FLAGS
    from snnkernels import _native_sources

    assert list(NVCC_FLAGS) == _native_sources.NVCC_FLAGS


def test_every_case_captured(report):
    from bench.static_launches import ci_cases

    assert {t["case"] for t in report["totals"]} == {c.label for c in ci_cases()}
    failed = [(t["case"], t["error"]) for t in report["totals"] if t["error"]]
    assert not failed, failed
    assert all(t["launches"] > 0 for t in report["totals"])
    assert set(TIME_LOOP) <= {r["kernel"] for r in report["rows"]}


def test_launches_are_specialised(report):
    """The capture compiles what a CUDA launch compiles: the LIF's tensors are 16-byte aligned and its N is a
    multiple of 16, so the JIT marks them (the hand-written AOT signatures did not)."""
    row = next(r for r in report["rows"] if r["kernel"] == "leaky_fwd_kernel" and r["case"].endswith("float32"))
    assert {"x_ptr", "spikes_ptr", "N"} <= set(row["specialised"]["divisibility_16"])
    assert "T" not in row["specialised"]["divisibility_16"]  # do_not_specialize
    assert row["loads"] == {"16": 8}, row["loads"]  # 8 steps of LDG.E.128 per chunk


def test_no_spills(report):
    spilled = [
        (r["kernel"], r["case"], r.get("local"), r["stl"])
        for r in report["rows"]
        if r["spill"] and r["kernel"] not in SPILLED
    ]
    assert not spilled, spilled


@pytest.mark.parametrize(
    "kernel", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=why)) for k, why in SPILLED.items()]
)
def test_known_spill_is_gone(report, kernel):
    rows = [r for r in report["rows"] if r["kernel"] == kernel]
    assert rows, f"no benchmark case launched {kernel}"
    spilled = [(r["case"], r.get("local"), r["stl"], r["ldl"]) for r in rows if r["spill"]]
    assert not spilled, spilled


def test_bytes_within_model(report):
    checked = [t for t in report["totals"] if t["model_bytes"]]
    assert any(t["case"].startswith("lif ") for t in checked)
    above = [(t["case"], t["bytes_over_model"]) for t in checked if t["above_model"]]
    assert not above, above


def test_in_flight_estimate_near_floor(report):
    """The Little's-law ESTIMATE of every launch (not a measurement) is within ESTIMATE_SLACK of its floor."""
    from bench.static_report import ESTIMATE_SLACK, slow_rows

    rows = [r for r in report["rows"] if r["source"] != "registry"]
    assert rows, "no launch read"
    slow = [(r["kernel"], r["case"], r["est_us_H100"] / r["floor_us_H100"]) for r in slow_rows(rows)]
    assert not [s for s in slow if s[0] not in SLOW], (ESTIMATE_SLACK, slow)


@pytest.mark.parametrize(
    "kernel", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=why)) for k, why in SLOW.items()]
)
def test_known_slow_launch_is_gone(report, kernel):
    from bench.static_report import slow_rows

    assert any(r["kernel"] == kernel for r in report["rows"]), f"no benchmark case launched {kernel}"
    slow = [
        (r["case"], r["est_us_H100"] / r["floor_us_H100"]) for r in slow_rows(report["rows"]) if r["kernel"] == kernel
    ]
    assert not slow, slow


@pytest.mark.parametrize(
    "kernel",
    [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=STAGED[k])) if k in STAGED else k for k in TIME_LOOP],
)
def test_time_loop_one_load_stage_per_chunk(report, kernel):
    rows = [r for r in report["rows"] if r["kernel"] == kernel]
    assert rows, f"no benchmark case launched {kernel}"
    staged = [(r["case"], r["load_stages"], r["order"]) for r in rows if r["load_stages"] != 1]
    assert not staged, staged
