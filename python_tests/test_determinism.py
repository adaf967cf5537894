"""Every fused op under ``torch.use_deterministic_algorithms(True)``: it must neither raise (no op without a
deterministic implementation on the path) nor change a bit between two identical runs. The kernels reduce
in fixed orders (per-tile partials summed by torch, no atomics); on a GPU this is what the test proves, and
on the CPU it guards against a nondeterministic op slipping into a fused path. The cases must run every op that
snnkernels/ops/registry.py calls deterministic (recorded, on each backend that runs here)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

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
    "neuron-tcja-pool": lambda: _Pair(neuron_tcja_pool, LIFNode(tau=2.0, step_mode="m", stateful=False),
                                      TCJA(2, 3, T, C), SeqToANN(nn.MaxPool2d(2))),
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


class _OpsSeen(TorchDispatchMode):
    """Names of the snnkernels ops called (those called inside another op's implementation excepted)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        namespace, _, name = func._schema.name.partition("::")
        if namespace == registry.NAMESPACE:
            self.names.add(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=pytest.mark.triton), "native", "cupy"])
def test_cases_reach_every_deterministic_op(backend, monkeypatch):
    """Every registered op of ``backend`` that the registry calls deterministic runs (twice alike) in some
    case above, with ``backend`` chosen for "auto" (``SNNKERNELS_BACKEND``; on "native" / "cupy" the attentions
    stay on "auto")."""
    problems = registry.load()
    expected = {e.name for e in registry.REGISTRY if e.backend == backend and e.deterministic and DEVICE in e.devices}
    if not expected:
        pytest.skip(f"no {backend} op runs on {DEVICE}")
    reason = registry.capability(min(expected), backend, DEVICE)
    if reason is not None or any(registry.ENTRIES[n].module in problems for n in expected):
        pytest.skip(reason or f"{backend}'s ops did not load: {problems}")
    monkeypatch.setenv("SNNKERNELS_BACKEND", backend)
    seen = _OpsSeen()
    with seen:
        for name in MODULES:
            _runs_twice_alike(name, monkeypatch)
    assert expected <= seen.names, f"no case runs {sorted(expected - seen.names)}: add one to MODULES"
