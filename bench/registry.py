"""Benchmark cases and providers, as data.

A case is an op at a shape and dtype; a provider is an implementation of the op. ``build(provider, op,
case, device)`` returns a forward callable ``f(x, params) -> spikes`` and the provider's memory schedule
(for the byte model in ``utils.lif_bytes``), or raises ``Unavailable`` with the reason, which the report
records: nothing is skipped silently.

Providers:

- ``torch-eager``: the eager reference (``snnkernels.reference``, via ``backend="torch"``).
- ``torch-compile``: ``torch.compile(fullgraph=True, dynamic=False)`` of the eager reference, built fresh
  for each case (Dynamo's caches are reset first, so no case runs into the recompile limit and falls
  back to eager); compilation happens in the warm-up call, outside the timing.
- ``snnkernels-triton`` / ``-native`` / ``-cupy``: the fused kernels through the public functions with
  an explicit ``backend=``; unavailable ones say why (``snnkernels.backends.backend_problem``).
- ``spikingjelly-*`` (SpikingJelly 2.0, LIF only): ``-cpu`` on the CPU; on CUDA ``-triton``, ``-cuda``
  (its ahead-of-time CUDA C++ build, present only when installed from source) and ``-torch`` (its Python
  loop with a hand-written backward). SpikingJelly reads its CUDA choice from
  ``SJ_LIF_CUDA_IMPLEMENTATION`` once at import; the harness sets the same field on its selector
  (``spikingjelly._ops.lif._selection``) and checks the choice with the public
  ``functional.neuron_implementation``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from snnkernels import functional as F
from snnkernels.backends import backend_problem
from snnkernels.neuron_models import lif_leaky_settings
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
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def label(self) -> str:
        return f"{self.op} T={self.T} {'x'.join(map(str, self.shape))} {self.dtype_name}"


@dataclass(frozen=True)
class Op:
    name: str
    description: str
    # (x, params, backend) -> spikes
    run: Callable[[torch.Tensor, list[torch.Tensor], str], torch.Tensor]
    # (case, device, dyadic) -> learnable parameters (leaves that receive gradients)
    make_params: Callable[[Case, str, bool], list[torch.Tensor]] = field(default=lambda case, device, dyadic: [])
    learned: int = 0  # learned per-channel coefficients (byte model)
    packed: bool = False  # the forward also writes the spikes at 1 bit each (byte model)
    # why SpikingJelly has no counterpart ("" for the LIF, which it has)
    not_in_spikingjelly: str = ""


def _lif(x, params, backend):
    return F.multistep_lif(x, tau=2.0, v_reset=0.0, detach_reset=False, surrogate_function=ATan(2.0), backend=backend)


def _leaky_channel_params(case: Case, device: str, dyadic: bool = False) -> list[torch.Tensor]:
    c = case.shape[2]
    if dyadic:  # powers of two: every product in the charge is exact (see run.verify)
        decay = torch.tensor([0.5, 0.25], device=device).repeat((c + 1) // 2)[:c]
        gain = torch.tensor([1.0, 0.5], device=device).repeat((c + 1) // 2)[:c]
    else:
        decay, gain = torch.linspace(0.3, 0.8, c, device=device), torch.linspace(0.8, 1.2, c, device=device)
    return [decay.requires_grad_(), gain.requires_grad_()]


def _leaky_channel(x, params, backend):
    decay, gain = params
    return F.multistep_leaky(
        x, decay=decay, input_gain=gain, v_reset=None, surrogate_function=ATan(2.0), backend=backend
    )


def _lif_packed(x, params, backend):
    spikes, _packed = F.leaky_neuron(
        x,
        None,
        **lif_leaky_settings(2.0, True, 0.0),
        v_threshold=1.0,
        detach_reset=False,
        surrogate_function=ATan(2.0),
        backend=backend,
        return_final_state=False,
        return_packed=True,
    )
    return spikes


OPS = {
    "lif": Op("lif", "multistep_lif: tau=2, hard reset to 0, ATan(2), reset not detached", _lif),
    "leaky_channel": Op(
        "leaky_channel",
        "multistep_leaky: learnable per-channel decay and input gain [C], soft reset, ATan(2)",
        _leaky_channel,
        _leaky_channel_params,
        learned=2,
        not_in_spikingjelly="SpikingJelly has no neuron with a learnable per-channel decay (its ParametricLIFNode "
        "learns one scalar)",
    ),
    "lif_packed": Op(
        "lif_packed",
        "lif that also returns its spikes at 1 bit each, the copy a following SpikeConv2d keeps (fused: written "
        "by the forward kernel; eager: a pass of its own; torch.compile may drop the unused copy)",
        _lif_packed,
        packed=True,
        not_in_spikingjelly="SpikingJelly's neurons do not pack their spikes",
    ),
}

# Shape sets ([T, B, C, ...]; the leaky op's channels are dim 2). GPU: N = 2^22 neurons per step, as in
# SpikingJelly's published benchmark ([T, 64, 65536]) and a conv-net layer ([T, 32, 128, 32, 32]).
GPU_T = (4, 8, 16, 32)
GPU_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_SJ_SHAPE = (64, 65536)
_CONV_SHAPE = (32, 128, 32, 32)


def _gpu_cases() -> list[Case]:
    """Every GPU case, most important first (a time budget cuts the tail): the two ops at their main
    shape, fp32 then bf16 then fp16; then the LIF at the conv-layer shape."""
    cases = []
    for dt in GPU_DTYPES:
        cases += [Case("lif", (T, *_SJ_SHAPE), dt) for T in GPU_T]
        cases += [Case("leaky_channel", (T, *_CONV_SHAPE), dt) for T in GPU_T]
    for dt in GPU_DTYPES:
        cases += [Case("lif", (T, *_CONV_SHAPE), dt) for T in GPU_T]
    for dt in (torch.float32, torch.bfloat16):  # the LIF that feeds a spike conv, against the rows above
        cases += [Case("lif_packed", (T, *_CONV_SHAPE), dt) for T in GPU_T]
    return cases


GPU_CASES = _gpu_cases()
GPU_QUICK_CASES = [Case("lif", (T, *_SJ_SHAPE), dt) for dt in (torch.float32, torch.bfloat16) for T in GPU_T] + [
    Case("leaky_channel", (T, *_CONV_SHAPE), torch.float32) for T in GPU_T
]
CPU_CASES = [Case("lif", (T, 16, 4096), torch.float32) for T in (4, 8, 16, 32)] + [
    Case("leaky_channel", (T, 4, 16, 32, 32), torch.float32) for T in (4, 8, 16, 32)
]
CPU_QUICK_CASES = [Case("lif", (T, 16, 4096), torch.float32) for T in (4, 8)] + [
    Case("leaky_channel", (8, 4, 16, 32, 32), torch.float32)
]
CPU_TABLE_CASES = [Case("lif", (8, 1000, 1000), torch.float32)]  # T = 8, N = 1e6: eager vs torch.compile
from snnkernels.ops.leaky import CHECKPOINT_CHUNK as CHUNK  # noqa: E402

# Verification: T = CHUNK + 1 crosses a checkpoint and ends inside a partial chunk
VERIFY_SHAPE = {op: (CHUNK + 1, 3, 4, 7, 9) for op in ("lif", "leaky_channel")} | {
    "lif_packed": (CHUNK + 1, 3, 8, 7, 9)
}

PROVIDERS = (
    "torch-eager",
    "torch-compile",
    "snnkernels-triton",
    "snnkernels-native",
    "snnkernels-cupy",
    "spikingjelly-torch",
    "spikingjelly-triton",
    "spikingjelly-cuda",
    "spikingjelly-cpu",
)
SCHEDULES = {
    "snnkernels-triton": "recompute",
    "snnkernels-native": "recompute",
    "snnkernels-cupy": "recompute",
    "spikingjelly-triton": "save_h",
    "spikingjelly-cuda": "save_h",
}
# Providers that claim bit-exact spikes against the eager reference (same charge, same rounding). The
# others (a compiler free to reorder, SpikingJelly's v + (x - v) / tau) must match exactly only on inputs
# whose arithmetic is exact; elsewhere a spike may flip within rounding of the threshold.
BIT_EXACT = {"torch-eager", "snnkernels-triton", "snnkernels-native", "snnkernels-cupy"}


def _snnkernels(backend: str, op: Op, case: Case, device: str):
    probe = torch.empty(0, device=device, dtype=case.dtype)
    problem = backend_problem(backend, probe)
    if problem is not None:
        raise Unavailable(problem)
    return lambda x, params: op.run(x, params, backend)


def _compiled(op: Op, case: Case, device: str):
    import torch._dynamo as dynamo

    dynamo.reset()  # a fresh cache per case: never the recompile limit's silent eager fallback
    eager = lambda x, params: op.run(x, params, "torch")  # noqa: E731
    return torch.compile(eager, fullgraph=True, dynamic=False)


def spikingjelly_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("spikingjelly")
    except Exception:  # noqa: BLE001 - not installed, or installed without metadata
        return None


def _spikingjelly(impl: str, op: Op, case: Case, device: str):
    if op.not_in_spikingjelly:
        raise Unavailable(op.not_in_spikingjelly)
    try:
        import spikingjelly._ops.lif as sj_lif
        from spikingjelly.activation_based import neuron, surrogate
        from spikingjelly.activation_based.functional.neuron import lif_multi_step, neuron_implementation
    except ImportError as exc:
        raise Unavailable(
            f"spikingjelly 2.x is not importable ({exc}); bench/fetch_peers.sh fetches its wheel"
        ) from exc
    if (impl == "cpu") != (device == "cpu"):
        raise Unavailable(f"SpikingJelly's {impl} path does not run on {device}")
    if device == "cuda":
        selection = sj_lif._selection
        selection._requested = impl  # what SJ_LIF_CUDA_IMPLEMENTATION=<impl> does at import
        selection._selections.clear()
        selection._compiled_selections.clear()
        try:
            chosen = neuron_implementation("lif", torch.device("cuda"))
        except Exception as exc:  # noqa: BLE001 - its own availability error, e.g. no native build
            raise Unavailable(f"SpikingJelly {impl}: {exc}") from None
        if chosen["implementation"] != impl:
            raise Unavailable(
                f"SpikingJelly selected {chosen['implementation']} instead of {impl}: {chosen['unavailable']}"
            )
    sg = surrogate.ATan(alpha=2.0)
    if case.dtype == torch.float32:
        node = neuron.LIFNode(
            tau=2.0,
            decay_input=True,
            v_threshold=1.0,
            v_reset=0.0,
            surrogate_function=sg,
            detach_reset=False,
            step_mode="m",
        ).to(device)

        def run(x, params):
            node.reset()
            return node(x)

        return run

    # fp16 / bf16: LIFNode keeps its state in the input dtype unless a precision plan is set, and then
    # takes SpikingJelly's Python reference in half precision. Its fused kernels run when the state is
    # fp32, which is the call LIFNode makes for fp32 input: lif_multi_step with an fp32 v_0.
    def run_half(x, params):
        v0 = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
        return lif_multi_step(x, v0, 2.0, True, 1.0, 0.0, sg, False, False)[0]

    return run_half


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
            raise Unavailable(
                "the Triton kernels need CUDA here (Triton's CPU interpreter is a test tool, not a fast path)"
            )
        return _snnkernels(provider.removeprefix("snnkernels-"), op, case, device), schedule
    if provider.startswith("spikingjelly-"):
        return _spikingjelly(provider.removeprefix("spikingjelly-"), op, case, device), schedule
    raise ValueError(f"unknown provider {provider!r}; known: {PROVIDERS}")
