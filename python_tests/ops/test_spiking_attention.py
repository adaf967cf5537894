"""The spiking transformers' attention cores (SSA, SDSA, Q-K token / channel; docs/spiking_attention.md):

- the eager references in fp64 against naive formulas written here independently (SpikingJelly's charge, the
  Sigmoid surrogate as a straight-through estimator, SSA in the other official ordering ``(q k^T) v``);
- the Triton kernels (fp32; on the CPU under the interpreter) against the fp64 references on fresh odd shapes,
  in three layouts (contiguous, the official [T, B, C, N] view, the token-major [T, B, N, C] view): the forward
  exactly (binary input and the official LIF make every value exact; with other LIF settings a spike may flip
  only at a threshold tie, and the rate is measured), every gradient within fp32 tolerance;
- the outputs' layout (no head-merge copy), the fp32 exactness of both SSA orderings, ``torch.compile`` with
  ``fullgraph=True`` (one graph), and the input checks.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from snnkernels import functional as SF
from snnkernels.reference.spiking_attention import (
    AttentionLIF,
    qk_channel_attention_reference,
    qk_token_attention_reference,
    spike_driven_self_attention_reference,
    spiking_self_attention_reference,
)
from snnkernels.surrogate import ATan, Sigmoid

from utils import FLIP_EPS, MAX_FLIP_RATE, assert_equal_verbose, assert_grad_close, compare_spikes

OPS = ("ssa", "sdsa", "qk_token", "qk_channel")
LAYOUTS = ("contiguous", "official", "token_major")


def random_shape(gen: torch.Generator) -> tuple[int, int, int, int, int]:
    """(T, B, heads, N, d): T 2-3, B 1-2, heads 1-2, N 5-9, d 3-8."""

    def pick(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    return pick(2, 3), pick(1, 2), pick(1, 2), pick(5, 9), pick(3, 8)


def make_input(shape, layout: str, gen: torch.Generator, binary: bool = True, dtype=torch.float64) -> torch.Tensor:
    """[T, B, heads, N, d] values stored contiguously, as the official [T, B, C, N] (a transposed view) or as
    [T, B, N, C] (Spikformer's CIFAR layout, heads split by a view)."""
    T, B, H, N, D = shape
    stored = {"contiguous": (T, B, H, N, D), "official": (T, B, H * D, N), "token_major": (T, B, N, H * D)}[layout]
    x = torch.rand(stored, generator=gen, dtype=torch.float64)
    x = (x < 0.5).to(dtype) if binary else (2 * x - 0.5).to(dtype)
    if layout == "official":
        x = x.view(T, B, H, D, N).transpose(-1, -2)
    elif layout == "token_major":
        x = x.view(T, B, N, H, D).transpose(2, 3)
    return x.requires_grad_()


# ---------------------------------------------------------------------------------------------------------
# naive formulas (fp64), independent of snnkernels' LIF


def naive_lif(x: torch.Tensor, tau: float, v_threshold: float, v_reset: float | None, detach: bool, alpha: float):
    """(spikes with the Sigmoid(alpha) surrogate's gradient, pre-reset potentials h), SpikingJelly's charge."""
    v = torch.zeros_like(x[0]) + (0.0 if v_reset is None else v_reset)
    spikes, hs = [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - (0.0 if v_reset is None else v_reset))) / tau
        sg = torch.sigmoid(alpha * (h - v_threshold))
        s = (h >= v_threshold).to(x.dtype) + (sg - sg.detach())  # exactly 0 forward
        r = s.detach() if detach else s
        v = h - v_threshold * r if v_reset is None else h * (1 - r) + v_reset * r
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs)


def naive(op: str, q, k, v, scale: float, lif: tuple):
    """(output, the LIF's pre-reset potentials) of ``op`` by einsum and ``naive_lif``."""
    if op == "ssa":
        pre = torch.einsum("tbhnd,tbhmd->tbhnm", q, k) @ v * scale  # the CIFAR model's (q k^T) v
        s, h = naive_lif(pre, *lif)
        return s, h
    if op == "sdsa":
        s, h = naive_lif(torch.einsum("tbhnd,tbhnd->tbhd", k, v)[..., None, :], *lif)
        return q * s, h
    axis = "tbhn" if op == "qk_token" else "tbhd"
    z = torch.einsum(f"tbhnd->{axis}", q)
    s, h = naive_lif(z[..., None] if op == "qk_token" else z[..., None, :], *lif)
    return s * k, h


def reference(op: str, q, k, v, scale: float, lif: AttentionLIF):
    if op == "ssa":
        return spiking_self_attention_reference(q, k, v, scale=scale, lif=lif)
    if op == "sdsa":
        return spike_driven_self_attention_reference(q, k, v, lif=lif)
    fn = qk_token_attention_reference if op == "qk_token" else qk_channel_attention_reference
    return fn(q, k, lif=lif)


def fused(op: str, q, k, v, scale: float, lif: AttentionLIF, backend: str = "triton"):
    kw = dict(
        tau=lif.tau,
        v_threshold=lif.v_threshold,
        v_reset=lif.v_reset,
        detach_reset=lif.detach_reset,
        surrogate_function=lif.surrogate_function,
        backend=backend,
    )
    if op == "ssa":
        return SF.spiking_self_attention(q, k, v, scale=scale, **kw)
    if op == "sdsa":
        return SF.spike_driven_self_attention(q, k, v, **kw)
    fn = SF.qk_token_attention if op == "qk_token" else SF.qk_channel_attention
    return fn(q, k, **kw)


def inputs_of(op: str, q, k, v) -> list[torch.Tensor]:
    return [q, k, v] if op in ("ssa", "sdsa") else [q, k]


# ---------------------------------------------------------------------------------------------------------
# the references against the naive formulas, fp64


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("op", OPS)
def test_reference_matches_naive_formula(op, binary, seed):
    gen = torch.Generator().manual_seed(100 + seed)
    shape = random_shape(gen)
    q, k, v = (make_input(shape, "official", gen, binary) for _ in range(3))
    tau, vth, v_reset, detach = (2.0, 0.5, 0.0, True) if seed != 2 else (3.0, 0.7, None, False)
    lif = AttentionLIF(tau, vth, v_reset, True, detach, Sigmoid(4.0))
    scale = 0.125 if binary else 0.3
    out = reference(op, q, k, v, scale, lif)
    expected, h = naive(op, q, k, v, scale, (tau, vth, v_reset, detach, 4.0))
    if op != "ssa" or binary:  # both SSA orderings are exact on binary input only
        assert_equal_verbose(out, expected.detach(), f"{op} forward")
    else:
        cmp = compare_spikes(out, expected, h, vth, eps=FLIP_EPS[torch.float64], name=f"{op} spikes")
        assert cmp.flips == 0
    assert out.abs().sum() > 0, "no spike at all: the comparison would be vacuous"
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    ins = inputs_of(op, q, k, v)
    got = torch.autograd.grad(out, ins, grad)
    want = torch.autograd.grad(expected, ins, grad)
    for name, a, e in zip("qkv", got, want, strict=False):
        assert_grad_close(a, e, f"{op} d{name}", reduced=True)


@pytest.mark.parametrize("N, D", [(196, 64), (64, 8)])
def test_both_ssa_orderings_are_bit_identical_in_fp32(N, D):
    """docs/spiking_attention.md "SSA": on binary input (q k^T) v and q (k^T v) are the same integers in fp32."""
    gen = torch.Generator().manual_seed(7)
    q, k, v = ((torch.rand(2, 1, 2, N, D, generator=gen) < 0.5).float() for _ in range(3))
    assert torch.equal((q @ k.transpose(-1, -2)) @ v * 0.125, q @ (k.transpose(-1, -2) @ v) * 0.125)


# ---------------------------------------------------------------------------------------------------------
# Triton (fp32) against the fp64 references


def _lif_case(case: str) -> tuple[AttentionLIF, float]:
    if case == "official":
        return AttentionLIF(), 0.125
    # inexact charge (tau 3), soft reset, the reset in the graph, another surrogate and scale; a threshold that
    # no sum of the binary inputs hits exactly (0.4 would: x / 3 = 0.1 * count, a real tie every few neurons)
    return AttentionLIF(3.0, 0.4321, None, True, False, ATan(2.0)), 0.3


def _flip_comparison(op, out, ref, h_ref, vth):
    """Spike flips of the fused op against the reference (compare_spikes per LIF neuron): a gate op's neuron
    counts as flipped when any output element it gates differs."""
    if op == "ssa":
        return compare_spikes(out, ref, h_ref, vth, eps=FLIP_EPS[torch.float32], max_flip_rate=MAX_FLIP_RATE)
    axis = -1 if op == "qk_token" else -2
    differ = (out.double() != ref).any(dim=axis, keepdim=True).double()
    return compare_spikes(
        differ, torch.zeros_like(differ), h_ref, vth, eps=FLIP_EPS[torch.float32], max_flip_rate=MAX_FLIP_RATE
    )


@pytest.mark.triton
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("case", ["official", "other"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", OPS)
def test_triton_matches_reference(op, layout, case, seed):
    gen = torch.Generator().manual_seed(1000 * seed + 17 * LAYOUTS.index(layout) + OPS.index(op))
    shape = random_shape(gen)
    q64, k64, v64 = (make_input(shape, layout, gen) for _ in range(3))
    q, k, v = (x.detach().float().requires_grad_() for x in (q64, k64, v64))
    for a, b in zip((q, k, v), (q64, k64, v64), strict=True):
        assert a.stride() == b.stride(), "the fp32 inputs keep the layout under test"
    lif, scale = _lif_case(case)
    ref = reference(op, q64, k64, v64, scale, lif)
    out = fused(op, q, k, v, scale, lif)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert out.abs().sum() > 0, "no spike at all: the comparison would be vacuous"
    # the LIF's potentials (the naive formula's, fp64), for the flip budget
    _, h_ref = naive(op, q64, k64, v64, scale, (lif.tau, lif.v_threshold, lif.v_reset, lif.detach_reset, 1.0))
    if case == "official":  # every value exact: identical outputs, no flip
        assert_equal_verbose(out.double(), ref.detach(), f"{op} forward")
        keep = None
    else:
        cmp = _flip_comparison(op, out, ref, h_ref, lif.v_threshold)
        # a flip changes every gradient of its head (SSA) or of its neuron's inputs: compare the rest
        keep = cmp.neuron_mask.reshape(cmp.neuron_mask.shape[0], cmp.neuron_mask.shape[1], -1).all(-1)
        keep = keep[None, :, :, None, None]
        if cmp.flips == 0:
            assert_equal_verbose(out.double(), ref.detach(), f"{op} forward")
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    ins32, ins64 = inputs_of(op, q, k, v), inputs_of(op, q64, k64, v64)
    got = torch.autograd.grad(out, ins32, grad.float())
    want = torch.autograd.grad(ref, ins64, grad)
    for name, a, e in zip("qkv", got, want, strict=False):
        exact_product = (op == "sdsa" and name == "q") or (op.startswith("qk") and name == "k")
        assert_grad_close(a.double(), e, f"{op} d{name}", reduced=not exact_product, mask=keep, dtype=torch.float32)


@pytest.mark.triton
@pytest.mark.parametrize("op", OPS)
def test_output_keeps_the_official_layout(op):
    """On the official [T, B, C, N] view the output is that layout too: merging the heads back is a view."""
    gen = torch.Generator().manual_seed(3)
    T, B, H, N, D = shape = (2, 1, 2, 7, 3)
    q, k, v = (make_input(shape, "official", gen, dtype=torch.float32) for _ in range(3))
    out = fused(op, q, k, v, 0.125, AttentionLIF())
    assert out.transpose(-1, -2).is_contiguous()
    merged = out.transpose(-1, -2).reshape(T, B, H * D, N)
    assert merged.data_ptr() == out.data_ptr()


@pytest.mark.triton
def test_compile_fullgraph_one_graph():
    """All four ops (forward and backward) traced by torch.compile(fullgraph=True) as one graph; aot_eager runs
    the Triton ops as they are (Inductor cannot launch the CPU interpreter)."""
    gen = torch.Generator().manual_seed(5)
    shape = (3, 2, 2, 7, 5)
    q, k, v = (make_input(shape, "official", gen, dtype=torch.float32) for _ in range(3))

    def block(q, k, v):
        a = SF.spiking_self_attention(q, k, v, backend="triton")
        b = SF.spike_driven_self_attention(q, k, v, backend="triton")
        c = SF.qk_token_attention(q, k, backend="triton")
        d = SF.qk_channel_attention(q, k, backend="triton")
        return a + 2 * b + 3 * c + 4 * d

    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(block, backend=counter, fullgraph=True)
    out = compiled(q, k, v)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    eager = block(q, k, v)
    eager_grads = torch.autograd.grad(eager.sum(), (q, k, v))
    assert counter.frame_count == 1
    assert_equal_verbose(out, eager, "compiled forward")
    for a, e in zip(grads, eager_grads, strict=True):
        assert_equal_verbose(a, e, "compiled gradient")


@pytest.mark.parametrize("op", OPS)
def test_input_checks(op):
    good = torch.zeros(2, 1, 2, 5, 3)
    with pytest.raises(ValueError, match="T, B, heads, N, d"):
        fused(op, good[0], good[0], good[0], 0.125, AttentionLIF(), backend="torch")
    with pytest.raises(ValueError, match="must match"):
        fused(op, good, good[:, :, :1], good[:, :, :1], 0.125, AttentionLIF(), backend="torch")
    with pytest.raises(ValueError, match="backend"):
        fused(op, good, good, good, 0.125, AttentionLIF(), backend="nope")


def test_tensor_tau_runs_on_the_reference_and_gets_a_gradient():
    """SDT v1's PLIF attention neuron learns tau: the reference path differentiates it, "triton" refuses it."""
    gen = torch.Generator().manual_seed(11)
    q, k, v = (make_input((3, 1, 2, 5, 4), "official", gen) for _ in range(3))
    tau = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    out = SF.spike_driven_self_attention(q, k, v, tau=tau, backend="auto")
    expected = SF.spike_driven_self_attention(q, k, v, tau=2.0, backend="torch")
    assert_equal_verbose(out, expected, "forward")
    (grad_tau,) = torch.autograd.grad((out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum(), tau)
    assert grad_tau.abs() > 0
    with pytest.raises(ValueError, match="tensor tau"):
        SF.spike_driven_self_attention(q, k, v, tau=tau, backend="triton")


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", OPS)
def test_triton_half_precision(op, dtype):
    """fp16 / bf16 spikes in: the kernels compute in fp32, so the output equals the fp64 reference exactly and
    every gradient is the fp32 one rounded once to the format (the utils tolerance of the dtype)."""
    gen = torch.Generator().manual_seed(23 + OPS.index(op))
    shape = random_shape(gen)
    q64, k64, v64 = (make_input(shape, "official", gen) for _ in range(3))
    q, k, v = (x.detach().to(dtype).requires_grad_() for x in (q64, k64, v64))
    ref = reference(op, q64, k64, v64, 0.125, AttentionLIF())
    out = fused(op, q, k, v, 0.125, AttentionLIF())
    assert out.dtype == dtype
    assert_equal_verbose(out.double(), ref.detach(), f"{op} forward")
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(dtype)
    got = torch.autograd.grad(out, inputs_of(op, q, k, v), grad)
    want = torch.autograd.grad(ref, inputs_of(op, q64, k64, v64), grad.double())
    for name, a, e in zip("qkv", got, want, strict=False):
        assert a.dtype == dtype
        assert_grad_close(a.double(), e, f"{op} d{name}", reduced=True, dtype=dtype)


@pytest.mark.triton
@pytest.mark.parametrize("shape", [(2, 0, 2, 5, 3), (2, 1, 2, 0, 3), (2, 1, 2, 5, 0)])
@pytest.mark.parametrize("op", OPS)
def test_empty_input(op, shape):
    """No sample, token or channel: an empty output of the reference's shape and empty gradients, no launch."""
    q, k, v = (torch.zeros(shape, requires_grad=True) for _ in range(3))
    out = fused(op, q, k, v, 0.125, AttentionLIF())
    assert out.shape == reference(op, q, k, v, 0.125, AttentionLIF()).shape
    for g, x in zip(torch.autograd.grad(out.sum(), inputs_of(op, q, k, v)), (q, k, v), strict=False):
        assert g.shape == x.shape


@pytest.mark.triton
@pytest.mark.parametrize("op", OPS)
def test_backward_keeps_only_the_inputs_it_needs(op):
    """docs/spiking_attention.md "Bytes held for backward (measured, CPU)": SSA saves q, k, v at 1 bit each
    (three uint8 buffers of ceil(n / 8) bytes); the gate sweeps save their binary inputs in place (the official
    layout's storages, no copy) plus the tiny sums Z, SDSA q, k, v and the Q-K ops only k. Nothing of the
    attention membrane's size is kept."""
    gen = torch.Generator().manual_seed(29)
    T, B, H, N, D = shape = (3, 2, 2, 7, 5)
    q, k, v = (make_input(shape, "official", gen, dtype=torch.float32) for _ in range(3))
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fused(op, q, k, v, 0.125, AttentionLIF())
    needed = [] if op == "ssa" else [q, k, v] if op == "sdsa" else [k]
    inputs = {x.untyped_storage().data_ptr() for x in needed}
    assert inputs <= set(saved), "an input was copied before it was saved"
    others = sum(n for ptr, n in saved.items() if ptr not in inputs)
    if op == "ssa":
        tiny = 3 * -(-q.numel() // 8)  # q, k, v packed
        assert len(saved) == 3, f"ssa saves {len(saved)} storages, expected the three packed inputs"
    else:
        tiny = 4 * T * B * H * (N if op == "qk_token" else D)  # Z, fp32
    assert others == tiny, f"{op} keeps {others} bytes besides its inputs, expected {tiny}"


@pytest.mark.triton
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ssa_gradients_keep_the_inputs_layouts_after_the_one_bit_round_trip(layout):
    """SSA's backward works on q, k, v unpacked from 1 bit (docs/spiking_attention.md "Fused SSA: what is
    stored, what is recomputed"): they come back in the inputs' layouts, so the gradients keep those strides."""
    gen = torch.Generator().manual_seed(31 + LAYOUTS.index(layout))
    q, k, v = (make_input((2, 2, 2, 7, 5), layout, gen, dtype=torch.float32) for _ in range(3))
    out = fused("ssa", q, k, v, 0.125, AttentionLIF())
    grads = torch.autograd.grad(out, (q, k, v), torch.randn(out.shape, generator=gen))
    for x, g in zip((q, k, v), grads, strict=True):
        assert g.stride() == x.stride(), layout


@pytest.mark.triton
def test_ssa_refuses_non_binary_inputs_it_would_save_at_one_bit():
    """The fused SSA raises on an input that is not 0 / 1 when a gradient is needed (the element named in the
    input's own coordinates); ``check=False`` skips the check, and without a gradient nothing is saved."""
    gen = torch.Generator().manual_seed(37)
    q, k, v = (make_input((2, 1, 2, 6, 3), "official", gen, dtype=torch.float32) for _ in range(3))
    with torch.no_grad():
        k[1, 0, 1, 4, 2] = 0.5
    with pytest.raises(ValueError, match=r"element \(1, 0, 1, 4, 2\)"):
        SF.spiking_self_attention(q, k, v, backend="triton")
    SF.spiking_self_attention(q, k, v, backend="triton", check=False)
    with torch.no_grad():
        out = SF.spiking_self_attention(q, k, v, backend="triton")
    ref = spiking_self_attention_reference(q.double(), k.double(), v.double(), scale=0.125, lif=AttentionLIF())
    assert_equal_verbose(out.double(), ref, "forward without a gradient")
