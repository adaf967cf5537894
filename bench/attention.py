"""Benchmark of the pooled attentions (TCJA, T-XA, DTA): verify, then time eager, torch.compile and ours.

    python -m bench.attention [--device auto|cpu|cuda] [--quick] [--ops tcja txa dta_product dta]
                              [--dtypes float32 ...] [--out bench/results] [--max-minutes M] [--no-plot]

``ma_tcsa`` is MA-SNN's released TCSA attention (+ ReLU) at the Gesture (T = 60) and CIFAR10-DVS (T = 20)
layer shapes (batch 16, our choice), ``ma_tcsa_lif`` the same followed by the MA-SNN neuron (the layer's
time loop; ours runs the two gate sweeps, then the gated neuron applies the gates and the ReLU as it loads
X, so the attention's output is never stored: ``snnkernels.nn.fused``). ``ma_tcsa``'s floor is 4 passes
forward (row stats, pixel stats, apply: read + write) and 6 backward (3 sweeps: dY + X, X, dY + X + dX).
``tcja_maxpool`` is TCJA followed by a 2x2 max pool: eager and torch.compile gate the full tensor, ours
pools first and applies ``tcja_gate`` to the pooled quarter (exact). ``lif_tcja_maxpool`` is the tail of
a TCJA-SNN DVS128 Gesture block, its LIF (tau 2, ATan(2), detached reset), TCJA and 2x2 max pool, at the
blocks' 16 x 16 and 8 x 8 planes (T = 20, C = 128, batch 16): eager and torch.compile run the three modules,
ours ``nn.fused.neuron_tcja_pool`` (the neuron counts its spikes per row as it fires, which is TCJA's mean,
and the gate multiplies the pooled spikes: TCJA makes no pass over the spikes). ``staa_lif`` is one STAA-LIF
layer of the (reconstructed) STAA ResNet-20 at T = 4, batch 64, training mode with a fixed TSRD mask; ours
fuses its global-context pooling (one sweep each way) and runs the step-attention loop on the step
kernels; ``staa_lif_persistent`` is the same layer with the loop as one persistent kernel each way
(``loop_kernel="persistent"``: one program per sample), timed for ours only, against ``staa_lif``'s eager
and compile rows. ``ma_tcsa_paper`` is the MA-SNN paper's in-loop TCSA-LIF
(not the released code) at a CIFAR10-DVS layer; ours runs every gate's statistics on the sweeps and each
step's gating, fire and reset as one kernel each way. ``dta_lif`` is DTA-SNN's encoding block
``DTA(X, LIF(X))`` with its TET LIF (fp32); ours forms DTA's output inside the neuron's time loop
(``nn.fused.neuron_dta``), so the spikes are never stored: compare with the ``dta`` row (DTA on given
spikes) plus the neuron benchmark's. ``bn_lif`` is a Conv -> BatchNorm -> LIF chain's BatchNorm2d (over the
T * B samples, training mode) and LIF (tau 2, ATan(2)) at DTA-SNN's stem and a stage-2 layer: eager and
torch.compile run the two modules, ours ``nn.bn_neuron`` (``bn_lif``: BatchNorm applied as the neuron loads X, its
output never stored; docs/bn_lif.md). ``bn_lif_packed`` is that pair when a spike conv follows it: it also gives
the spikes at 1 bit each (eager and compile pack them after the neuron, ours writes them as the kernel fires;
docs/spike_pack.md "Packed by the neuron"; torch.compile may drop the copy, which the timed function does not
return). Sizes are the papers'
placements: TCJA at C = 128, T = 20 on 32 x 32 and at C = 512, T = 10 (16 x 16,
our choice: the paper names C and T only), batch 16; T-XA, DTA's output product and the whole DTA module at
C = 64, T = 4 and 6, 32 x 32, batch 64 (the DTA-SNN CIFAR stem). On the CPU (``--device cpu``) the
shapes shrink and only eager and torch.compile run: the fused sweeps are Triton, which needs CUDA.

Rows that an op's registry entry carries (``OpEntry.bench``, snnkernels/ops/registry.py ``BenchRow``) join
``PASSES`` and ``cases`` from the entry: the spiking transformers' attention cores ``ssa``, ``sdsa``, ``qk_token``
and ``qk_channel`` (snnkernels/ops/spiking_attention_triton.py), each with its LIF, on binary [T, B, C, N] spikes in
8 heads, at Spikformer-8-512 / SDT 8-512 on ImageNet and QKFormer's stage 1. A new op adds its row there.

Providers: ``torch-eager`` (the module / function with ``backend="torch"``), ``torch-compile``
(``torch.compile(fullgraph=True, dynamic=False)`` of that eager code, compiled in the warm-up),
``snnkernels-triton``, and for ``ssa`` / ``qk_token`` / ``qk_channel`` ``spikingjelly``: SpikingJelly 2.0's
``layer.SpikingSelfAttention`` / ``layer.QKAttention`` attention step (its own core function and ``attn_lif``,
with whatever LIF implementation SpikingJelly selects on the device), on q, k (, v) stacked into the one
``qkv`` tensor its layer takes (that copy is in its time; in the layer q, k, v come from one LIF), fp32 only
(its neuron keeps the membrane in the input dtype). SpikingJelly has no SDSA. Every provider is first checked
against eager on the same inputs (output and every gradient, relative to the largest entry: 1e-4 fp32, 2e-2
half) and never timed if that fails.

Byte model (``GB/s``, ``fraction_of_copy_bw``): the two-sweep floor (docs/tcja_dta.md "The two-sweep floor"), per
element of X in the storage dtype: forward reads X twice and writes Y (3 passes); backward reads dY and X for the row
sums, then dY (and X for T-XA) and writes dX (TCJA 4, T-XA 5 passes); DTA's product adds NA and S reads and the dNA / dS
writes. The whole DTA module has no floor (T-NA's dense convolutions): its rows carry times and speedups only. Results:
``<out>/<date>_<device>_attention.{csv,json}`` (+ plots).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":  # compiled kernels persist across runs (git-ignored)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parent / ".inductor-cache"))

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import torch  # noqa: E402

from snnkernels import functional as SF  # noqa: E402
from snnkernels.nn import DTA  # noqa: E402
from snnkernels.ops import registry  # noqa: E402

from .registry import Case  # noqa: E402  (op, shape [T, B, C, H, W], dtype)
from .run import DTYPES, ELEM, markdown_table, metadata, progress, result_row, timed_row, write_results  # noqa: E402
from .utils import copy_bandwidth_gbps, peak_memory_mb, time_fn  # noqa: E402

PROVIDERS = ("torch-eager", "torch-compile", "snnkernels-triton", "spikingjelly")
# ops SpikingJelly 2.0 has a layer for (``spikingjelly.activation_based.layer``), fp32 only
SPIKINGJELLY_OPS = ("ssa", "qk_token", "qk_channel")
# passes over one [T, B, C, H, W] tensor in the storage dtype: (forward, backward) at the floor
PASSES = {
    "tcja": (3, 4),
    "tcja_maxpool": (None, None),
    "lif_tcja_maxpool": (None, None),
    "txa": (3, 5),
    "dta_product": (5, 9),
    "dta": (None, None),
    "ma_tcsa": (4, 6),
    "ma_tcsa_lif": (None, None),
    "staa_lif": (None, None),
    "ma_tcsa_paper": (None, None),
    "dta_lif": (None, None),
    "staa_lif_persistent": (None, None),
    "bn_lif": (None, None),
    "bn_lif_packed": (None, None),
}
# the rows that ops' registry entries carry (``OpEntry.bench``; here the spiking transformers' attention cores,
# docs/spiking_attention.md): their inputs, functions, shapes and byte floors come from the entry
REGISTRY_ROWS: dict[str, registry.BenchRow] = {row.name: row for e in registry.REGISTRY for row in e.bench}
PASSES.update({name: row.passes for name, row in REGISTRY_ROWS.items()})
BN_LIF_OPS = ("bn_lif", "bn_lif_packed")
# ops whose eager and torch.compile rows are another op's (same computation, only ours differs)
SAME_BASELINE = {"staa_lif_persistent": "staa_lif"}
# MA-SNN reduction ratios (t_ratio, c_ratio) per placement T (the official Config.py): Gesture T = 60: 5 / 8;
# CIFAR10-DVS T = 20: 2 / 8
MA_RATIOS = {60: (5, 8), 20: (2, 8)}
VERIFY_RTOL = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 2e-2}


def _numel(case: Case) -> int:
    return math.prod(case.shape)


def make_inputs(case: Case, device: str, seed: int = 0):
    """(tensors, leaves, grad_out): the op's arguments, the ones that get gradients, and dL/dY."""
    gen = torch.Generator(device=device).manual_seed(seed)
    T, B, C, H, W = case.shape

    def rnd(*shape, scale=1.0):
        return torch.randn(shape, generator=gen, device=device) * scale

    if case.op in REGISTRY_ROWS:
        return REGISTRY_ROWS[case.op].inputs(case.shape, case.dtype, device, gen)
    x = rnd(*case.shape).to(case.dtype).requires_grad_()
    out_shape = (T, B, C, H // 2, W // 2) if case.op in ("tcja_maxpool", "lif_tcja_maxpool") else case.shape
    grad_out = rnd(*out_shape).to(case.dtype)
    if case.op in ("tcja", "tcja_maxpool"):
        params = [rnd(C, C, 4, scale=0.25).requires_grad_(), rnd(T, T, 3, scale=0.3).requires_grad_()]
        return [x, *params], [x, *params], grad_out
    txa_params = [
        rnd(T, T, 3, scale=0.3).requires_grad_(),
        rnd(C, C, 6, scale=0.2).requires_grad_(),
        torch.tensor(1.0, device=device, requires_grad=True),
        torch.tensor(1.0, device=device, requires_grad=True),
    ]
    if case.op == "txa":
        return [x, *txa_params], [x, *txa_params], grad_out
    spikes = (torch.rand(case.shape, generator=gen, device=device) > 0.8).to(case.dtype)
    if case.op == "dta_product":
        na = rnd(*case.shape).to(case.dtype).requires_grad_()
        return [x, na, spikes, *txa_params], [x, na, *txa_params], grad_out
    if case.op in ("ma_tcsa", "ma_tcsa_lif"):
        rt, rc = MA_RATIOS.get(T, (2, 8))
        ht, hc = max(T // rt, 1), max(C // rc, 1)
        weights = [
            rnd(ht, T, scale=T**-0.5),
            rnd(T, ht, scale=ht**-0.5),
            rnd(hc, C, scale=C**-0.5),
            rnd(C, hc, scale=hc**-0.5),
            rnd(1, 2, 3, 3, scale=1 / 3),
        ]
        weights = [w.requires_grad_() for w in weights]
        return [x, *weights], [x, *weights], grad_out
    if case.op in ("staa_lif", "staa_lif_persistent", "ma_tcsa_paper", "dta_lif", "lif_tcja_maxpool", *BN_LIF_OPS):
        return [x], [x], grad_out  # the module owns its parameters
    return [x, spikes], [x], grad_out  # dta: the module owns its parameters


def _spikingjelly_attention(case: Case, device: str):
    """SpikingJelly 2.0's attention step of ``layer.SpikingSelfAttention`` / ``layer.QKAttention`` (core and
    ``attn_lif``, the membrane reset before each call) on the [T, B, C, H * W] spikes; output [T, B, C, H, W]."""
    try:
        from spikingjelly.activation_based.layer import QKAttention, SpikingSelfAttention
    except ImportError as exc:
        raise RuntimeError(
            f"unavailable: spikingjelly 2.x layers are not importable ({exc}); bench/fetch_peers.sh fetches its wheel"
        ) from None
    if case.op not in SPIKINGJELLY_OPS:
        raise RuntimeError(f"unavailable: SpikingJelly has no layer for {case.op}")
    T, B, C, H, W = case.shape
    heads = math.gcd(C, 8)
    if case.op == "ssa":
        layer = SpikingSelfAttention(C, heads).to(device)

        def core(qkv: torch.Tensor) -> torch.Tensor:
            return layer.attn_lif(layer._ssa_kernel_torch(qkv, layer.scale))

    else:
        layer = QKAttention(C, heads, qka_type="token" if case.op == "qk_token" else "channel").to(device)
        core = layer._qka_forward_torch  # applies layer.attn_lif itself

    def run(*spikes: torch.Tensor) -> torch.Tensor:
        layer.attn_lif.reset()
        qkv = torch.stack(spikes, 2).view(T, B, len(spikes), heads, C // heads, H * W)
        return core(qkv).reshape(T, B, C, H, W)

    return run


_DTA_MODULES: dict = {}


def _dta_module(case: Case, device: str, backend: str) -> DTA:
    key = (case.shape, case.dtype, device, backend)
    if key not in _DTA_MODULES:
        torch.manual_seed(0)  # same weights for every provider
        _DTA_MODULES[key] = DTA(case.T, case.shape[2], backend=backend).to(device=device, dtype=case.dtype)
    return _DTA_MODULES[key]


def _maxpool2(y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(y.flatten(0, 1), 2).unflatten(0, y.shape[:2])


def _tcja_maxpool(backend: str):
    """TCJA then a 2x2 max pool (the TCJA-SNN VGG placement). Eager / compile gate the full tensor first;
    ours pools first and applies tcja_gate to the pooled quarter
    (exact: docs/tcja_dta.md "Gate after pooling, spike counts")."""
    if backend == "torch":
        return lambda x, wt, wc: _maxpool2(SF.tcja(x, wt, wc, backend="torch"))
    return lambda x, wt, wc: _maxpool2(x) * SF.tcja_gate(x, wt, wc, backend=backend)[..., None, None].to(x.dtype)


_TCJA_BLOCKS: dict = {}


def _tcja_block(case: Case, device: str, backend: str):
    """(LIF, TCJA, max pool) of a TCJA-SNN DVS128 Gesture block, the same weights for every provider."""
    from snnkernels.models import SeqToANN
    from snnkernels.models.tcja_nets import DVS128_GESTURE as p
    from snnkernels.nn import TCJA, LIFNode

    key = (case.shape, case.dtype, device, backend)
    if key not in _TCJA_BLOCKS:
        torch.manual_seed(0)
        lif = LIFNode(
            tau=p.tau, surrogate_function=p.surrogate, detach_reset=True, step_mode="m", stateful=False, backend=backend
        )
        tcja = TCJA(p.kernel_size_t, p.kernel_size_c, case.T, case.shape[2], backend=backend)
        _TCJA_BLOCKS[key] = (lif, tcja.to(device=device, dtype=case.dtype), SeqToANN(torch.nn.MaxPool2d(2, 2)))
    return _TCJA_BLOCKS[key]


def _lif_tcja_maxpool(case: Case, device: str, backend: str):
    """LIF -> TCJA -> 2x2 max pool; ours: ``nn.fused.neuron_tcja_pool``, which must not fall back to the
    unfused modules (a blocked fusion is an error here, not a slower row)."""
    from snnkernels.nn.fused import fusion_blocker, neuron_tcja_pool

    lif, tcja, pool = _tcja_block(case, device, backend)
    if backend == "torch":
        return lambda x: pool(tcja(lif(x)))

    def fused(x):
        blocker = fusion_blocker(tcja, lif, x)
        if blocker is not None:
            raise RuntimeError(f"neuron_tcja_pool would not fuse: {blocker}")
        return neuron_tcja_pool(lif, tcja, pool, x)

    return fused


def _ma_tcsa(backend: str, with_lif: bool):
    """MA-SNN's released TCSA (+ ReLU), alone or followed by the MA-SNN neuron (the ConvAttLIF layer's
    attention and time loop)."""
    from snnkernels.nn import MASNNLIFNode

    lif = MASNNLIFNode(backend=backend)
    if with_lif and backend == "triton":
        # the gates' two sweeps, then the neuron applies them in its time loop (nn.fused)
        from snnkernels.nn.fused import neuron_settings
        from snnkernels.ops.ma_snn import ma_gated_neuron_fused

        settings = neuron_settings(lif)
        return lambda x, ta0, ta1, ca0, ca1, sa: ma_gated_neuron_fused(
            x, "TCS", (ta0, ta1), (ca0, ca1), sa, neuron=settings
        )

    def run(x, ta0, ta1, ca0, ca1, sa):
        y = SF.multi_dimensional_attention(x, "TCS", (ta0, ta1), (ca0, ca1), sa, backend=backend)
        return lif(y) if with_lif else y

    return run


def _dta_lif(case: Case, device: str, backend: str):
    """DTA-SNN's encoding block ``DTA(X, LIF(X))`` with its TET LIF; ours: ``nn.fused.neuron_dta``, the
    neuron's loop forming DTA's output as it fires."""
    from snnkernels.nn import TETLIFNode
    from snnkernels.nn.fused import neuron_dta

    module, lif = _dta_module(case, device, backend), TETLIFNode(step_mode="m", backend=backend)
    if backend == "triton":
        return lambda x: neuron_dta(lif, module, x)
    return lambda x: module(x, lif(x))


_BN_LIF_MODULES: dict = {}


def _bn_lif(case: Case, device: str, backend: str):
    """BatchNorm2d over the T * B samples (training mode) and a LIF; ours (``"triton"``): ``nn.bn_neuron``, one
    op. Each provider has its own pair, at BatchNorm's initial state, so their running statistics move alike.
    ``bn_lif_packed``: the spikes (what the function returns) and their packed copy."""
    from torch import nn

    from snnkernels import functional as SF
    from snnkernels.nn import LIFNode, bn_neuron
    from snnkernels.surrogate import ATan

    key = (case.shape, case.dtype, device, backend)
    if key not in _BN_LIF_MODULES:
        bn = nn.BatchNorm2d(case.shape[2]).to(device)
        lif = LIFNode(tau=2.0, surrogate_function=ATan(2.0), step_mode="m", stateful=False, backend=backend)
        _BN_LIF_MODULES[key] = (bn, lif.to(device))
    bn, lif = _BN_LIF_MODULES[key]
    if case.op == "bn_lif_packed":
        if backend == "triton":
            return lambda x: bn_neuron(bn, lif, x, backend="triton", return_packed=True)[0]

        def unfused_then_packed(x):
            spikes = lif(bn(x.flatten(0, 1)).unflatten(0, x.shape[:2]))
            SF.spike_pack(spikes.detach(), check=False, backend="torch")
            return spikes

        return unfused_then_packed
    if backend == "triton":
        return lambda x: bn_neuron(bn, lif, x, backend="triton")
    return lambda x: lif(bn(x.flatten(0, 1)).unflatten(0, x.shape[:2]))


def op_fn(case: Case, device: str, backend: str):
    if case.op in REGISTRY_ROWS:
        return REGISTRY_ROWS[case.op].run(case.shape, backend)
    if case.op in BN_LIF_OPS:
        return _bn_lif(case, device, backend)
    if case.op == "dta_lif":
        return _dta_lif(case, device, backend)
    if case.op == "lif_tcja_maxpool":
        return _lif_tcja_maxpool(case, device, backend)
    if case.op in ("staa_lif", "staa_lif_persistent"):
        return _staa_lif(case, device, backend)
    if case.op == "ma_tcsa_paper":
        return _layer_module(case, device, backend)
    if case.op in ("ma_tcsa", "ma_tcsa_lif"):
        return _ma_tcsa(backend, case.op == "ma_tcsa_lif")
    if case.op == "tcja":
        return lambda x, wt, wc: SF.tcja(x, wt, wc, backend=backend)
    if case.op == "tcja_maxpool":
        return _tcja_maxpool(backend)
    if case.op == "txa":
        return lambda x, *p: SF.txa(x, *p, backend=backend)
    if case.op == "dta_product":
        return lambda *a: SF.dta_product(*a, backend=backend)
    module = _dta_module(case, device, backend)
    return lambda x, s: module(x, s)


def build(provider: str, case: Case, device: str):
    if provider == "torch-eager":
        return op_fn(case, device, "torch")
    if provider == "torch-compile":
        import torch._dynamo as dynamo

        dynamo.reset()
        return torch.compile(op_fn(case, device, "torch"), fullgraph=True, dynamic=False)
    if provider == "spikingjelly":
        return _spikingjelly_attention(case, device)
    if device != "cuda":
        raise RuntimeError("unavailable: the Triton sweeps need CUDA (the interpreter is a test tool)")
    return op_fn(case, device, "triton")


def _params_of(case: Case, device: str, backend: str) -> list[torch.Tensor]:
    if case.op in BN_LIF_OPS:
        _bn_lif(case, device, backend)
        return list(_BN_LIF_MODULES[(case.shape, case.dtype, device, backend)][0].parameters())
    if case.op in ("dta", "dta_lif"):
        return list(_dta_module(case, device, backend).parameters())
    if case.op == "lif_tcja_maxpool":
        return list(_tcja_block(case, device, backend)[1].parameters())
    if case.op in ("staa_lif", "staa_lif_persistent", "ma_tcsa_paper"):
        return list(_layer_module(case, device, backend).parameters())
    return []


_LAYER_MODULES: dict = {}


def _layer_module(case: Case, device: str, backend: str):
    """The neuron layer of ``staa_lif`` / ``ma_tcsa_paper``, weights drawn so that it fires, the same for
    every provider. STAA-LIF: the paper's M = 2, N = 0.1 start is silent (docs/models.md), so M, N are
    drawn around 0.6 and 1.1. The paper's TCSA-LIF at MA-SNN's CIFAR10-DVS ratios (2, 8)."""
    from snnkernels.nn import STAALIFNode
    from snnkernels.nn.ma_snn import TCSALIFNode

    key = (case.op, case.shape, case.dtype, device, backend)
    if key not in _LAYER_MODULES:
        T, _, C, H, W = case.shape
        torch.manual_seed(0)
        if case.op in ("staa_lif", "staa_lif_persistent"):
            loop_kernel = "persistent" if case.op == "staa_lif_persistent" else "steps"
            module = STAALIFNode(T, C, H, W, m_init=0.5, n_init=1.0, backend=backend, loop_kernel=loop_kernel)
        else:
            module = TCSALIFNode(T, C, *MA_RATIOS.get(T, (2, 8)), 3, "TCS", backend=backend)
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.normal_(0.0, 0.1 if name.startswith("sa.") else 0.2)
            if case.op != "ma_tcsa_paper":
                module.M.uniform_(0.3, 0.9)
                module.N.uniform_(0.8, 1.5)
        _LAYER_MODULES[key] = module.to(device)
    return _LAYER_MODULES[key]


def _staa_lif(case: Case, device: str, backend: str):
    """The layer in training mode with a fixed TSRD mask (step 1 dropped), so every provider computes the
    same thing; ours ("triton"): the fused GC pooling and the step kernels."""
    module = _layer_module(case, device, backend)
    mask = torch.zeros(case.T, dtype=torch.bool, device=device)
    mask[min(1, case.T - 1)] = True
    return lambda x: module(x, mask)


def run_once(fn, case, device, backend, tensors, leaves, grad_out):
    params = _params_of(case, device, backend)
    out = fn(*tensors)
    grads = torch.autograd.grad(out, leaves + params, grad_out)
    return [out.detach(), *grads]


def verify(provider: str, case: Case, device: str) -> str | None:
    """None when ``provider`` matches eager on a small case of the same op and dtype, else the reason."""
    T, B, C = case.shape[:3]
    small = Case(case.op, (T, 2, C, 6, 8), case.dtype)
    # ours through op_fn, so the check also runs under Triton's interpreter (the test suite does that)
    fn = op_fn(small, device, "triton") if provider == "snnkernels-triton" else build(provider, small, device)
    tensors, leaves, grad_out = make_inputs(small, device, seed=1)
    ref_fn = op_fn(small, device, "torch")
    backend = "triton" if provider == "snnkernels-triton" else "torch"
    got = run_once(fn, small, device, backend, tensors, leaves, grad_out)
    want = run_once(ref_fn, small, device, "torch", tensors, leaves, grad_out)
    # a gradient that is 0 analytically (a bias in front of a LayerNorm or a softmax: STAA's GC block) is
    # rounding noise on both sides: compare every tensor relative to at least 1e-4 of the largest gradient
    floor = 1e-4 * max((g.double().abs().max().item() for g in want[1:]), default=0.0)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        scale = max(b.double().abs().max().item(), floor if i else 0.0) or 1.0
        err = (a.double() - b.double()).abs().max().item() / scale
        if not err <= VERIFY_RTOL[case.dtype]:
            return f"tensor {i} (0 = output, then gradients) differs from eager by {err:.2e} of its largest entry"
    return None


def cases(device: str, quick: bool, ops: list[str], dtypes: list[torch.dtype]) -> list[Case]:
    if device == "cuda":
        shapes = {
            "tcja": [(20, 16, 128, 32, 32), (10, 16, 512, 16, 16)],
            "tcja_maxpool": [(20, 16, 128, 32, 32)],
            "txa": [(4, 64, 64, 32, 32), (6, 64, 64, 32, 32)],
            "dta_product": [(4, 64, 64, 32, 32), (6, 64, 64, 32, 32)],
            "dta": [(4, 64, 64, 32, 32), (6, 64, 64, 32, 32)],
            "dta_lif": [(4, 64, 64, 32, 32), (6, 64, 64, 32, 32)],
            # MA-SNN: Gesture net layers at T = 60 (after their pools), CIFAR10-DVS layers at T = 20
            "ma_tcsa": [(60, 16, 64, 32, 32), (60, 16, 128, 8, 8), (20, 16, 128, 16, 16)],
            "ma_tcsa_lif": [(60, 16, 64, 32, 32), (20, 16, 128, 16, 16)],
            # STAA ResNet-20 (docs/models.md) at T = 4, CIFAR batch 64: the stem and stage-1 / 2 layers
            "staa_lif": [(4, 64, 64, 32, 32), (4, 64, 64, 16, 16), (4, 64, 128, 8, 8)],
            "staa_lif_persistent": [(4, 64, 64, 32, 32), (4, 64, 64, 16, 16), (4, 64, 128, 8, 8)],
            # the paper's in-loop TCSA-LIF at a CIFAR10-DVS layer
            "ma_tcsa_paper": [(20, 16, 128, 16, 16)],
            # TCJA-SNN's DVS128 Gesture blocks 4 and 5 (TCJA on 16 x 16 and 8 x 8 planes)
            "lif_tcja_maxpool": [(20, 16, 128, 16, 16), (20, 16, 128, 8, 8)],
            # DTA-SNN's CIFAR stem (T = 6, batch 64) and a stage-2 layer
            "bn_lif": [(6, 64, 64, 32, 32), (6, 64, 128, 16, 16)],
            "bn_lif_packed": [(6, 64, 64, 32, 32)],
        }
    else:
        shapes = {
            "tcja": [(20, 2, 128, 16, 16)],
            "tcja_maxpool": [(20, 2, 128, 16, 16)],
            "txa": [(4, 4, 64, 16, 16)],
            "dta_product": [(4, 4, 64, 16, 16)],
            "dta": [(4, 2, 64, 16, 16)],
            "dta_lif": [(4, 2, 64, 16, 16)],
            "ma_tcsa": [(20, 2, 32, 16, 16)],
            "ma_tcsa_lif": [(20, 2, 32, 16, 16)],
            "staa_lif": [(4, 4, 32, 16, 16)],
            "staa_lif_persistent": [(4, 4, 32, 16, 16)],
            "ma_tcsa_paper": [(8, 2, 16, 8, 8)],
            "lif_tcja_maxpool": [(20, 2, 32, 16, 16)],
            "bn_lif": [(6, 2, 64, 16, 16)],
            "bn_lif_packed": [(6, 2, 64, 16, 16)],
        }
    for name, row in REGISTRY_ROWS.items():
        shapes[name] = list(row.gpu_shapes if device == "cuda" else row.cpu_shapes)
    if quick:
        shapes = {k: v[:1] for k, v in shapes.items()}
        dtypes = dtypes[:1]
    # with a neuron behind it, half precision may flip a spike that sits within an ulp of the threshold, and
    # the verification compares outputs exactly enough to call that a failure: that op runs in fp32 only
    fp32_only = {"ma_tcsa_lif", "staa_lif", "staa_lif_persistent", "ma_tcsa_paper", "dta_lif", "lif_tcja_maxpool"}
    fp32_only |= set(BN_LIF_OPS) | {name for name, row in REGISTRY_ROWS.items() if not row.half}
    return [
        Case(op, s, dt) for dt in dtypes for op in ops for s in shapes[op] if op not in fp32_only or dt == torch.float32
    ]


def floor_bytes(case: Case, mode: str) -> int | None:
    fwd, bwd = PASSES[case.op]
    if fwd is None:
        return None
    passes = fwd if mode == "fwd" else fwd + bwd
    return passes * _numel(case) * ELEM[case.dtype]


def time_one(fn, case: Case, device: str, backend: str) -> dict:
    tensors, leaves, grad_out = make_inputs(case, device)
    params = _params_of(case, device, backend)
    every = leaves + params

    def fwd():
        with torch.no_grad():
            fn(*tensors)

    def fwd_bwd():
        fn(*tensors).backward(grad_out)

    out = {}
    for mode, f in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        f()
        for t in every:
            t.grad = None
        out[mode] = (time_fn(f, device, grad_to_none=every), peak_memory_mb(f, device))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="first shape of each op, first dtype only")
    ap.add_argument("--ops", nargs="*", default=list(PASSES), choices=list(PASSES))
    ap.add_argument("--providers", nargs="*", default=list(PROVIDERS), choices=list(PROVIDERS))
    ap.add_argument("--dtypes", nargs="*", default=None, choices=list(DTYPES))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtypes = (
        [DTYPES[d] for d in args.dtypes]
        if args.dtypes
        else ([torch.float32, torch.bfloat16] if device == "cuda" else [torch.float32])
    )
    started = time.time()
    meta = metadata(device)
    meta["byte_model"] = "bench/attention.py PASSES: the two-sweep floor per element of X"
    meta["copy_bandwidth_GBps"] = copy_bandwidth_gbps(device)
    jobs = [
        (c, p)
        for c in cases(device, args.quick, args.ops, dtypes)
        for p in args.providers
        if c.op not in SAME_BASELINE or p == "snnkernels-triton" or SAME_BASELINE[c.op] not in args.ops
        if p != "spikingjelly" or (c.op in SPIKINGJELLY_OPS and c.dtype == torch.float32)
    ]
    # torch.compile compiles each case for tens of seconds: time every eager and fused row first, so a time
    # budget cuts compile rows, not ours
    jobs.sort(key=lambda job: job[1] == "torch-compile")
    rows, verified = [], {}
    for case, provider in progress(jobs, len(jobs), "attention"):
        if args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            rows.append(
                result_row(case, provider, device, status="not run", note=f"time budget ({args.max_minutes} min)")
            )
            continue
        backend = "triton" if provider == "snnkernels-triton" else "torch"
        try:
            if provider == "snnkernels-triton" and device != "cuda":
                build(provider, case, device)  # raises: say why instead of verifying the interpreter
            key = (provider, case.op, case.dtype)
            if key not in verified:
                verified[key] = verify(provider, case, device)
            if verified[key] is not None:
                rows.append(result_row(case, provider, device, status="FAILED", note=f"verification: {verified[key]}"))
                continue
            measured = time_one(build(provider, case, device), case, device, backend)
        except Exception as exc:  # noqa: BLE001 - recorded, and the run goes on
            status = "unavailable" if str(exc).startswith("unavailable") else "FAILED"
            if status == "FAILED":
                traceback.print_exc()
            rows.append(result_row(case, provider, device, status=status, note=str(exc).splitlines()[0][:300]))
            continue
        for mode, (timing, peak) in measured.items():
            nbytes = floor_bytes(case, mode)
            seconds = timing.p50_ms * 1e-3
            gbps = nbytes / seconds / 1e9 if nbytes else None
            rows.append(
                timed_row(
                    case,
                    provider,
                    device,
                    mode,
                    timing,
                    peak,
                    schedule="two-sweep floor",
                    mb_moved=(nbytes or 0) / 1e6,
                    gbps=gbps or 0.0,
                    floor_gbps=gbps or 0.0,
                    copy_bandwidth=meta["copy_bandwidth_GBps"],
                    note=None if nbytes else "no byte floor (dense convolutions)",
                )
            )
        meta["wall_s"] = round(time.time() - started, 1)
        _speedups(rows)
        write_results(rows, meta, Path(args.out), "attention", plot=False)
    _speedups(rows)
    meta["complete"] = True
    paths = write_results(rows, meta, Path(args.out), "attention", plot=not args.no_plot)
    print(markdown_table(rows))
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    failed = [r for r in rows if r["status"] == "FAILED"]
    for r in failed:
        print(f"FAILED: {r['provider']} {r['op']} {r['dtype']} {r['shape']}: {r['note']}", file=sys.stderr)
    return 1 if failed else 0


def _speedups(rows: list[dict]) -> None:
    """speedup_vs_eager, and the same against torch.compile in the note column of our rows."""
    key = lambda r: (SAME_BASELINE.get(r["op"], r["op"]), r["mode"], r["dtype"], r["shape"])  # noqa: E731
    base = {(key(r), r["provider"]): r["ms_p50"] for r in rows if r["status"] == "ok"}
    for r in rows:
        if r["status"] != "ok":
            continue
        eager, compiled = base.get((key(r), "torch-eager")), base.get((key(r), "torch-compile"))
        r["speedup_vs_eager"] = eager / r["ms_p50"] if eager else None
        r["speedup_vs_compile"] = compiled / r["ms_p50"] if compiled else None


if __name__ == "__main__":
    sys.exit(main())
