"""The benchmark rows cover every registered op: each row of bench/run.py (the neuron) and bench/attention.py
(the attentions) runs forward and backward at a tiny shape on its fused backend while a dispatch mode records the
``torch.ops.snnkernels`` ops it calls; every op of the registry (snnkernels/ops/registry.py) that runs here must
be among them, unless NOT_BENCHED says why not. A new op is found from its registry entry: it fails here until
a benchmark row runs it."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench import attention as A
from bench import registry as lif_rows
from bench import run as lif_run
from snnkernels.ops import registry

from conftest import DEVICE

# op -> why no benchmark row runs it
NOT_BENCHED = {
    "leaky_fwd_counted_triton": "firing statistics' counting forward (recording mode, not training): its cost is "
    "the plain forward's plus a register count, measured by python_tests/test_firing.py's machine-code check",
    # the Triton packing runs inside the ssa row (SSA saves q, k, v at 1 bit), the native packing in the native
    # lif_packed row (the native neuron packs its spikes after firing); the unpacking runs in no row
    "spike_unpack_native": "the native spike unpacking (a spike layer's backward) has no timing row yet: "
    "bench/memory.py measures what the packing saves (the bytes held)",
    "bn_lif_stats_native": "bn_lif's native path (the native neuron with BatchNorm in torch ops) has no timing row "
    "yet: bench/memory.py measures what it keeps; bench/NOTES.md gives its traffic model, not a time",
}


class OpRecorder(TorchDispatchMode):
    """Records the names of the snnkernels ops dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == registry.NAMESPACE:
            self.ops.add(func._schema.name.split("::")[1])
        return func(*args, **(kwargs or {}))


def _tiny_attention_case(op: str) -> A.Case:
    # as test_bench_attention.py: STAA's GC LayerNorm needs C // 4 > 1 features, the paper TCSA C >= 8
    channels = 16 if op in ("staa_lif", "staa_lif_persistent", "ma_tcsa_paper") else 6
    return A.Case(op, (4, 2, channels, 5, 3), torch.float32)


def _run_attention_row(op: str, backend: str) -> None:
    case = _tiny_attention_case(op)
    fn = A.op_fn(case, DEVICE, backend)
    tensors, leaves, grad_out = A.make_inputs(case, DEVICE)
    A.run_once(fn, case, DEVICE, backend, tensors, leaves, grad_out)


def _run_neuron_row(op: str, backend: str) -> None:
    case = lif_rows.Case(op, (5, 2, 3, 7), torch.float32)
    x, params, grad = lif_run.make_inputs(case, DEVICE)
    out = lif_rows.OPS[op].run(x, params, backend)
    torch.autograd.grad(out, [x, *params], grad)


def _fused_backends() -> list[str]:
    probe = torch.empty(0, device=DEVICE)
    from snnkernels.backends import backend_problem

    return [b for b in ("triton", "native", "cupy") if backend_problem(b, probe) is None]


@pytest.mark.triton
def test_every_registered_op_has_a_benchmark_row():
    registry.load()
    recorder = OpRecorder()
    with recorder:
        for backend in _fused_backends():
            for op in lif_rows.OPS:
                _run_neuron_row(op, backend)
        for op in A.PASSES:
            _run_attention_row(op, "triton")
    runnable = {e.name for e in registry.REGISTRY if registry.capability(e.name, e.backend, DEVICE) is None}
    missing = sorted(runnable - recorder.ops - set(NOT_BENCHED))
    assert not missing, f"registered ops that no benchmark row runs: {missing}"
    assert set(NOT_BENCHED) <= {e.name for e in registry.REGISTRY}, "an exemption names no registered op"
    assert not set(NOT_BENCHED) & recorder.ops, "an exempted op is benchmarked now: drop its exemption"


def test_the_recorder_sees_a_registered_op():
    """The check above can fail: the recorder sees an op when it runs, and nothing when none does."""
    pytest.importorskip("triton")
    registry.load()
    recorder = OpRecorder()
    with recorder:
        torch.zeros(3).sum()
    assert recorder.ops == set()
    if registry.capability("leaky_fwd_native", "native", DEVICE) is None:
        with recorder:
            _run_neuron_row("lif", "native")
        assert {"leaky_fwd_native", "leaky_bwd_native"} <= recorder.ops


@pytest.mark.triton
def test_the_entries_rows_are_benchmark_rows():
    """A row an entry carries (``OpEntry.bench``) is timed by bench/attention.py at its shapes and dtypes."""
    rows = [row for e in registry.REGISTRY for row in e.bench]
    assert {"ssa", "sdsa", "qk_token", "qk_channel"} <= {row.name for row in rows}
    dtypes = [torch.float32, torch.bfloat16]
    for device in ("cuda", "cpu"):
        got = {(c.op, c.shape, c.dtype) for c in A.cases(device, False, list(A.PASSES), dtypes)}
        for row in rows:
            shapes = row.gpu_shapes if device == "cuda" else row.cpu_shapes
            want = {(row.name, s, dt) for s in shapes for dt in dtypes if row.half or dt == torch.float32}
            assert want <= got, f"{row.name}: {sorted(want - got)} not benchmarked on {device}"
