"""pytest-benchmark entry over the same registry as bench.run (CPU quick cases by default, the GPU quick
cases on a GPU):

    pytest bench/test_bench_lif.py --benchmark-only

Not part of the test suite (pytest's testpaths is python_tests/, and ``pytest python_tests`` never looks
here). A provider is timed only after ``bench.run.verify`` passed for its (op, dtype), exactly as in the
command-line report; an unavailable provider is a skip with its reason.
"""

from __future__ import annotations

import functools

import pytest
import torch

pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed")

from bench import registry  # noqa: E402
from bench.run import make_inputs, verify  # noqa: E402
from bench.utils import MODES  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = registry.GPU_QUICK_CASES if DEVICE == "cuda" else registry.CPU_QUICK_CASES


@functools.cache
def _verified(provider: str, op: str, dtype: torch.dtype) -> tuple[str, str]:
    return verify(provider, op, dtype, DEVICE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", registry.PROVIDERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "-"))
def test_neuron(benchmark, case, provider, mode):
    state, detail = _verified(provider, case.op, case.dtype)
    if state == "unavailable":
        pytest.skip(detail)
    assert state == "ok", f"verification FAILED: {detail}"
    try:
        fn, _ = registry.build(provider, case.op, case, DEVICE)
    except registry.Unavailable as exc:
        pytest.skip(str(exc))
    x, params, g = make_inputs(case, DEVICE)
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)

    def step():
        if mode == "inference":
            with torch.no_grad():
                fn(x, params)
        elif mode == "fwd":
            fn(x, params)
        else:
            x.grad = None
            for p in params:
                p.grad = None
            fn(x, params).backward(g)
        sync()

    step()  # compilation and autotuning outside the timing
    benchmark.extra_info.update(
        op=case.op,
        provider=provider,
        mode=mode,
        dtype=case.dtype_name,
        T=case.T,
        shape="x".join(map(str, case.shape)),
        N=case.N,
    )
    benchmark(step)
