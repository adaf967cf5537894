"""Benchmark cases and providers, as data.

A case is an op at a shape and dtype; a provider is an implementation of the op. ``build(provider, op,
case, device)`` returns a forward callable ``f(x, params) -> spikes`` and the provider's memory schedule
(for the byte model in utils.lif_bytes), or raises ``Unavailable`` with the reason, which the report
records: nothing is skipped silently.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from snnkernels import functional as F
from snnkernels.backends import backend_problem
from snnkernels.surrogate import ATan


class Unavailable(Exception):
    """A provider cannot run a case here (the message says why)."""


@dataclass(frozen=True)
class Case:
    op: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def T(self) -> int:
        return self.shape[0]

    @property
    def N(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def label(self) -> str:
        return f"{self.op} T={self.T} {list(self.shape)} {str(self.dtype).removeprefix('torch.')}"


@dataclass(frozen=True)
class Op:
    name: str
    description: str
    # (x, params, backend) -> spikes
    run: Callable[[torch.Tensor, list[torch.Tensor], str], torch.Tensor]
    make_params: Callable[[Case, str], list[torch.Tensor]] = field(default=lambda case, device: [])


def _lif(x, params, backend):
    return F.multistep_lif(x, tau=2.0, surrogate_function=ATan(), backend=backend)


def _leaky_channel_params(case: Case, device: str) -> list[torch.Tensor]:
    c = case.shape[2]
    return [torch.linspace(0.3, 0.8, c, device=device).requires_grad_(),
            torch.linspace(0.8, 1.2, c, device=device).requires_grad_()]


def _leaky_channel(x, params, backend):
    decay, gain = params
    return F.multistep_leaky(x, decay=decay, input_gain=gain, v_reset=None, surrogate_function=ATan(), backend=backend)


OPS = {
    "lif": Op("lif", "multistep_lif: tau=2, hard reset to 0, ATan(2), not detached", _lif),
    "leaky_channel": Op("leaky_channel", "multistep_leaky: learnable per-channel decay and input gain [C], soft "
                        "reset, ATan(2)", _leaky_channel, _leaky_channel_params),
}

GPU_T = (4, 8, 16, 32)
GPU_CASES = (
    [Case("lif", (T, 64, 65536), dt) for dt in (torch.float32, torch.bfloat16, torch.float16) for T in GPU_T]
    + [Case("leaky_channel", (T, 32, 128, 32, 32), dt) for dt in (torch.float32, torch.bfloat16) for T in GPU_T]
)
GPU_QUICK_CASES = [Case("lif", (T, 64, 65536), torch.float32) for T in GPU_T]
CPU_CASES = [Case("lif", (T, 16, 4096), torch.float32) for T in (4, 8)] + [
    Case("leaky_channel", (8, 4, 16, 32, 32), torch.float32)]
CPU_TABLE_CASES = [Case("lif", (8, 1000, 1000), torch.float32)]  # T = 8, N = 1e6 (issue #3's CPU target)
VERIFY_CASE = {"lif": Case("lif", (5, 3, 4, 7, 9), torch.float32),
               "leaky_channel": Case("leaky_channel", (5, 3, 4, 7, 9), torch.float32)}

PROVIDERS = ("torch-eager", "torch-compile", "snnkernels-triton", "snnkernels-native", "snnkernels-cupy",
             "spikingjelly-torch", "spikingjelly-triton", "spikingjelly-cuda", "spikingjelly-cpu")
SCHEDULES = {"snnkernels-triton": "recompute", "snnkernels-native": "recompute", "snnkernels-cupy": "recompute",
             "spikingjelly-triton": "save_h", "spikingjelly-cuda": "save_h"}


def _snnkernels(backend: str, op: Op, case: Case, device: str):
    probe = torch.empty(0, device=device, dtype=case.dtype)
    problem = backend_problem(backend, probe)
    if problem is not None:
        raise Unavailable(problem)
    return lambda x, params: op.run(x, params, backend)


def _compiled(op: Op, case: Case, device: str):
    eager = lambda x, params: op.run(x, params, "torch")  # noqa: E731
    return torch.compile(eager, fullgraph=True, dynamic=False)


def _spikingjelly(impl: str, op: Op, case: Case, device: str):
    if op.name != "lif":
        raise Unavailable("SpikingJelly has no per-channel learnable-decay LIF to compare with")
    try:
        import spikingjelly._ops.lif as sj_lif
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError as exc:
        raise Unavailable(f"spikingjelly 2.x is not importable ({exc}); bench/fetch_peers.sh fetches its wheel")
    if (impl == "cpu") != (device == "cpu"):
        raise Unavailable(f"SpikingJelly's {impl} path does not run on {device}")
    if device == "cuda":
        # SpikingJelly 2.0 picks its CUDA implementation from SJ_LIF_CUDA_IMPLEMENTATION at import; force it
        selection = sj_lif._selection
        selection._requested = impl
        selection._selections.clear()
        selection._compiled_selections.clear()
        try:
            selection._select(torch.cuda.current_device())
        except Exception as exc:  # noqa: BLE001 - its own availability error
            raise Unavailable(f"SpikingJelly {impl}: {exc}") from None
    node = neuron.LIFNode(tau=2.0, v_reset=0.0, surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=False,
                          step_mode="m").to(device)

    def run(x, params):
        node.reset()
        return node(x)

    return run


def build(provider: str, op_name: str, case: Case, device: str):
    """(forward callable, memory schedule) of ``provider`` for ``case``, or raise Unavailable."""
    op = OPS[op_name]
    schedule = SCHEDULES.get(provider, "floor")
    if provider == "torch-eager":
        return (lambda x, params: op.run(x, params, "torch")), schedule
    if provider == "torch-compile":
        return _compiled(op, case, device), schedule
    if provider.startswith("snnkernels-"):
        if provider == "snnkernels-triton" and device != "cuda":
            raise Unavailable("Triton's CPU interpreter is a test tool, not a fast path")
        return _snnkernels(provider.removeprefix("snnkernels-"), op, case, device), schedule
    if provider.startswith("spikingjelly-"):
        return _spikingjelly(provider.removeprefix("spikingjelly-"), op, case, device), schedule
    raise ValueError(f"unknown provider {provider!r}; known: {PROVIDERS}")
