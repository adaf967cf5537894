"""Every fused op under ``torch.use_deterministic_algorithms(True)``: it must neither raise (no op without a
deterministic implementation on the path) nor change a bit between two identical runs. The kernels reduce
in fixed orders (per-tile partials summed by torch, no atomics); on a GPU this is what the test proves, and
on the CPU it guards against a nondeterministic op slipping into a fused path. Two layers: every op that
snnkernels/ops/registry.py calls deterministic, on its registry samples (a new op is covered by its entry), and
the modules below, whose forward and backward run the ops as training does."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from snnkernels.models import SeqToANN
from snnkernels.nn import (
    DTA,
    TCJA,
    TXA,
    LeakyNode,
    LIFNode,
    MultiDimensionalAttention,
    ParametricLIFNode,
    STAALIFNode,
    TCSALIFNode,
    TETLIFNode,
)
from snnkernels.nn.fused import attention_neuron, neuron_dta, neuron_tcja_pool
from snnkernels.ops import registry

from conftest import DEVICE

T, B, C, H = 4, 2, 8, 6


class _Pair(nn.Module):
    """A fused pair (plus what follows it) behind one module: ``run(first, second, *extra, x)``."""

    def __init__(self, run: Callable, first: nn.Module, second: nn.Module, *extra: nn.Module) -> None:
        super().__init__()
        self.run, self.first, self.second, self.extra = run, first, second, nn.ModuleList(extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.first, self.second, *self.extra, x)


def _unfused_dta(neuron: nn.Module, dta: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return dta(x, neuron(x))


def _counting(neuron: nn.Module) -> nn.Module:
    neuron.record_spike_counts = True  # the firing statistics' forward
    return neuron


MODULES: dict[str, Callable[[], nn.Module]] = {
    "lif": lambda: LIFNode(tau=2.0, step_mode="m", stateful=False),
    "lif-counted": lambda: _counting(LIFNode(tau=2.0, step_mode="m", stateful=False)),
    "plif": lambda: ParametricLIFNode(init_tau=2.0, step_mode="m", stateful=False),
    "leaky-per-channel": lambda: LeakyNode(channels=C, learnable=True, v_reset=None),
    "tcja": lambda: TCJA(2, 3, T, C),
    "txa": lambda: TXA(T, C),
    "ma-snn-tcs": lambda: MultiDimensionalAttention(T, C, 2, 2),
    "tcsa-lif": lambda: TCSALIFNode(T, C, 2, 2),
    "staa-lif": lambda: STAALIFNode(T, C, H, H, drop_prob=0.0),
    "staa-lif-persistent": lambda: STAALIFNode(T, C, H, H, drop_prob=0.0, loop_kernel="persistent"),
    "dta": lambda: _Pair(_unfused_dta, TETLIFNode(), DTA(T, C)),
    "gated-neuron": lambda: _Pair(attention_neuron, MultiDimensionalAttention(T, C, 2, 2), TETLIFNode()),
    "neuron-tcja-pool": lambda: _Pair(
        neuron_tcja_pool, LIFNode(tau=2.0, step_mode="m", stateful=False), TCJA(2, 3, T, C), SeqToANN(nn.MaxPool2d(2))
    ),
    "neuron-dta": lambda: _Pair(neuron_dta, TETLIFNode(), DTA(T, C)),
}


def _run(module: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The output and every gradient of one forward + backward."""
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_(True)
    out = module(x)
    weights = torch.linspace(-1.0, 1.0, out.numel(), device=out.device).view_as(out)
    (out * weights).sum().backward()
    return [out.detach(), x.grad] + [p.grad for p in module.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", list(MODULES))
def test_deterministic_algorithms(name, monkeypatch):
    _runs_twice_alike(name, monkeypatch)


def _runs_twice_alike(name: str, monkeypatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode needs it
    torch.manual_seed(0)
    module = MODULES[name]().to(DEVICE)
    x = 8.0 * torch.rand(T, B, C, H, H, device=DEVICE) - 2.0  # every layer fires, the gates too
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = _run(module, x)
        second = _run(module, x)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert len(first) == len(second) >= 2
    assert first[0].abs().sum() > 0 and first[1].abs().sum() > 0, "nothing reached the output"
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        assert torch.equal(a, b), f"{name}: tensor {i} differs between two identical runs"


def _flat(out) -> list[torch.Tensor]:
    """The tensors of an op's output (a tensor, or a tuple with tensors and Nones)."""
    items = out if isinstance(out, (tuple, list)) else (out,)
    return [t for t in items if isinstance(t, torch.Tensor)]


def _deterministic_entries():
    return [
        pytest.param(e, id=e.name, marks=[pytest.mark.triton] if e.backend == "triton" else [])
        for e in registry.REGISTRY
        if e.deterministic
    ]


@pytest.fixture(scope="module")
def unloaded() -> dict[str, str]:
    return registry.load()


@pytest.mark.parametrize("entry", _deterministic_entries())
def test_every_deterministic_op_reruns_bit_identically(entry, unloaded, monkeypatch):
    """Every op the registry calls deterministic, on its registry samples (so a new op is covered by its
    entry alone): no error under ``torch.use_deterministic_algorithms(True)`` and the same bits twice."""
    if entry.module in unloaded:
        pytest.skip(f"{entry.module} did not load: {unloaded[entry.module]}")
    if DEVICE not in entry.devices:
        pytest.skip(f"{entry.name} has no {DEVICE} kernel")
    reason = registry.capability(entry.name, entry.backend, DEVICE)
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(0)
    samples = entry.samples(DEVICE)
    assert samples, f"{entry.name}: no samples"
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.no_grad():
            for k, args in enumerate(samples):
                first, second = _flat(entry.op()(*args)), _flat(entry.op()(*args))
                assert len(first) == len(second) >= 1
                for i, (a, b) in enumerate(zip(first, second, strict=True)):
                    assert torch.equal(a, b), f"{entry.name}, sample {k}: output {i} differs between two runs"
    finally:
        torch.use_deterministic_algorithms(previous)
