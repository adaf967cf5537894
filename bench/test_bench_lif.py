"""pytest-benchmark entry over the same registry as bench.run (CPU cases by default, CUDA ones on a GPU):

    pytest bench/test_bench_lif.py --benchmark-only

Not part of the test suite (pytest's testpaths is python_tests/). Correctness is checked by
``bench.run.verify`` before a provider is timed, exactly as in the command-line report.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytest_benchmark")

from bench import registry  # noqa: E402
from bench.run import _inputs, verify  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CASES = registry.GPU_QUICK_CASES if DEVICE == "cuda" else registry.CPU_CASES
PROVIDERS = ["torch-eager", "torch-compile", "snnkernels-triton", "snnkernels-native", "spikingjelly-torch",
             "spikingjelly-triton", "spikingjelly-cpu"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "_"))
def test_forward_backward(benchmark, case, provider):
    state, detail = verify(provider, case.op, DEVICE)
    if state == "unavailable":
        pytest.skip(detail)
    assert state == "ok", detail
    fn, _ = registry.build(provider, case.op, case, DEVICE)
    x, params = _inputs(case, DEVICE)
    g = torch.randn(case.shape, device=DEVICE).to(case.dtype)

    def step():
        x.grad = None
        fn(x, params).backward(g)
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    step()  # compile outside the timing
    benchmark(step)
