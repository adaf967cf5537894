"""The spiking transformers' attention cores on Triton (``snnkernels::spiking_attention_*``), with their autograd.

docs/spiking_attention.md. Kernels in ``snnkernels.kernels.triton.spiking_attention``. Tensors are
[T, B, heads, N, d] with any strides; outputs and gradients take the strides of the tensor they belong to when
it is dense (else contiguous ones). The LIF travels as ``lif`` = [decay, gain, bias, v_threshold, v_reset,
v_init, surrogate parameter] (``lif_arguments``) plus the surrogate id and the reset flags.

- SSA: ``spiking_attention_ssa_fwd`` (the spikes), ``spiking_attention_ssa_bwd`` (the Triton recompute and walk
  back to ``G = scale dL/dX``, then the four products of docs/spiking_attention.md "SSA" as batched matmuls).
- Gate sweeps (SDSA, Q-K): ``spiking_attention_gate_fwd`` / ``_bwd``; the Q-K token attention is the channel
  one on the transposed views.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import triton

from ..kernels.triton import spiking_attention as K
from ..neuron_models import lif_coefficients
from ..reference.spiking_attention import AttentionLIF
from ..surrogate import Sigmoid, Triangle
from ._device import on_device_of
from .autograd_helpers import distinct
from .registry import AotVariant, BenchRow, rand, registered_op, triton_entry
from .spike_pack import pack_in_place_order
from .triton_launch import COMPILE_OPTIONS, f32

__all__ = [
    "lif_arguments",
    "ssa_tiles",
    "key_value",
    "gate_tiles",
    "ssa_fwd",
    "ssa_bwd",
    "gate_fwd",
    "gate_bwd",
    "spiking_self_attention_fused",
    "gate_attention_fused",
]

LIF_FIELDS = ("decay", "gain", "bias", "v_threshold", "v_reset", "v_init", "sg_param")


def lif_arguments(lif: AttentionLIF) -> tuple[list[float], int, bool, bool]:
    """(lif floats rounded to fp32, surrogate id, hard reset, detach reset) of the attention LIF."""
    decay, gain, bias = lif_coefficients(lif.tau, lif.decay_input, lif.v_reset)
    hard = lif.v_reset is not None
    v_reset = lif.v_reset if hard else 0.0
    floats = f32(decay, gain, bias, lif.v_threshold, v_reset, v_reset, lif.surrogate_function.param)
    return floats, lif.surrogate_function.id, hard, lif.detach_reset


def _is_dense(x: torch.Tensor) -> bool:
    """Whether x's elements fill its storage span exactly once (some permutation of a contiguous tensor)."""
    expected = 1
    for size, stride in sorted(
        ((s, st) for s, st in zip(x.shape, x.stride(), strict=True) if s != 1), key=lambda p: p[1]
    ):
        if stride != expected:
            return False
        expected *= size
    return True


def _dense(x: torch.Tensor) -> torch.Tensor:
    """x itself when dense (its layout kept: outputs ``empty_like`` it keep the strides), else a contiguous copy."""
    return x if _is_dense(x) else x.contiguous()


def _lif_kwargs(lif: list[float], backward: bool) -> dict[str, float]:
    names = LIF_FIELDS if backward else LIF_FIELDS[:-1]
    return dict(zip(names, lif, strict=False))


def ssa_tiles(N: int, D: int) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_D, num_warps): every dot dimension >= 16 (python_tests/kernels/triton_aot.py compiles the
    papers' d = 32 and 64 without stack)."""
    block_d = max(16, triton.next_power_of_2(D))
    block_n = max(16, min(16 if block_d >= 64 else 64, triton.next_power_of_2(N)))
    return block_n, block_d, 8 if block_d >= 64 else 4


def key_value(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """KV = K^T V per (t, b, head), fp32 [T, B, heads, d, d] (exact integers on binary K, V: products of 0 / 1
    summed below 2^24, in fp32 or TF32 alike)."""
    return k.float().transpose(-1, -2) @ v.float()


# ---------------------------------------------------------------------------------------------------------
# SSA


@torch.library.custom_op("snnkernels::spiking_attention_ssa_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def ssa_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, lif: list[float], hard_reset: bool
) -> torch.Tensor:
    """Spikes ``LIF(scale * q (k^T v))`` [T, B, heads, N, d] in q's dtype and (dense) layout."""
    spikes = torch.empty_like(q)
    T, B, H, N, D = q.shape
    if spikes.numel() == 0:
        return spikes
    block_n, block_d, warps = ssa_tiles(N, D)
    kv = key_value(k, v)
    with on_device_of(q):
        K.ssa_fwd_kernel[(B * H, triton.cdiv(N, block_n))](
            q,
            kv,
            spikes,
            T,
            H,
            N,
            D,
            *q.stride(),
            *kv.stride(),
            *spikes.stride(),
            *f32(scale),
            **_lif_kwargs(lif, backward=False),
            HARD_RESET=hard_reset,
            BLOCK_N=block_n,
            BLOCK_D=block_d,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return spikes


@ssa_fwd.register_fake
def _(q, k, v, scale, lif, hard_reset):
    return torch.empty_like(q)


def _ssa_pre_activation_grad(
    grad: torch.Tensor, q, kv, scale: float, lif: list[float], sg_id: int, hard_reset: bool, detach_reset: bool
) -> torch.Tensor:
    """G = scale * dL/dX, fp32 contiguous [T, B, heads, N, d]: the kernel's recompute and walk back."""
    w = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    T, B, H, N, D = q.shape
    block_n, block_d, warps = ssa_tiles(N, D)
    with on_device_of(q):
        K.ssa_bwd_kernel[(B * H, triton.cdiv(N, block_n))](
            grad,
            q,
            kv,
            w,
            T,
            H,
            N,
            D,
            *grad.stride(),
            *q.stride(),
            *kv.stride(),
            *w.stride(),
            *f32(scale),
            **_lif_kwargs(lif, backward=True),
            HARD_RESET=hard_reset,
            DETACH_RESET=detach_reset,
            SG_ID=sg_id,
            BLOCK_N=block_n,
            BLOCK_D=block_d,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return w


@torch.library.custom_op("snnkernels::spiking_attention_ssa_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def ssa_bwd(
    grad: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    lif: list[float],
    sg_id: int,
    hard_reset: bool,
    detach_reset: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dq, dL/dk, dL/dv) of SSA given dL/dspikes, in the inputs' dtypes and (dense) layouts."""
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if q.numel() == 0:
        return dq, dk, dv
    kv = key_value(k, v)
    g = _ssa_pre_activation_grad(grad, q, kv, scale, lif, sg_id, hard_reset, detach_reset)
    q32, k32, v32 = q.float(), k.float(), v.float()
    dkv = q32.transpose(-1, -2) @ g
    dq.copy_(g @ kv.transpose(-1, -2))
    dk.copy_(v32 @ dkv.transpose(-1, -2))
    dv.copy_(k32 @ dkv)
    return dq, dk, dv


@ssa_bwd.register_fake
def _(grad, q, k, v, scale, lif, sg_id, hard_reset, detach_reset):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


class _SSAFunction(torch.autograd.Function):
    """docs/spiking_attention.md "Fused SSA: what is stored, what is recomputed": q, k, v saved at 1 bit each."""

    @staticmethod
    def forward(ctx: Any, q, k, v, scale: float, lif: list[float], sg_id: int, hard: bool, detach: bool, check: bool):
        ctx.settings = (scale, lif, sg_id, hard, detach)
        packed, ctx.layouts = zip(*(pack_in_place_order(x, check, "triton") for x in (q, k, v)), strict=True)
        ctx.save_for_backward(*packed)
        return ssa_fwd(q, k, v, scale, lif, hard)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        q, k, v = (layout.unpack(b) for layout, b in zip(ctx.layouts, ctx.saved_tensors, strict=True))
        dq, dk, dv = ssa_bwd(grad, q, k, v, *ctx.settings)
        return dq, dk, dv, None, None, None, None, None, None


def spiking_self_attention_fused(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, lif: AttentionLIF, check: bool = True
) -> torch.Tensor:
    """Fused ``spiking_self_attention_reference`` (checked arguments): q, k, v [T, B, heads, N, d] binary, any
    strides; ``check`` raises a ValueError on an element that is not 0 / 1 when a gradient is needed."""
    floats, sg_id, hard, detach = lif_arguments(lif)
    q, k, v = distinct(_dense(q), _dense(k), _dense(v))
    if not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        return ssa_fwd(q, k, v, scale, floats, hard)  # nothing to save: any real input runs
    return _SSAFunction.apply(q, k, v, scale, floats, sg_id, hard, detach, check)


# ---------------------------------------------------------------------------------------------------------
# Gate sweeps: Y = X * LIF(sum over axis 3 of A (* B)), the LIF per (b, head, axis-4 index)


# fewer programs than this (2 per H100 SM) leave too few bytes in flight at a 1024-value tile (bench/NOTES.md
# "Q-K channel attention's gate forward: more bytes a program when programs are few")
FEW_PROGRAMS = 2 * 132


def gate_tiles(R: int, P: int, programs: int | None = None) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_P, num_warps): 32 columns a program (more programs for small B * heads), 1024 values; 4096
    when the grid of ``programs`` (batch x heads, if given) by column blocks is small."""
    block_p = min(32, triton.next_power_of_2(max(P, 1)))
    values = 1024
    if programs is not None and programs * triton.cdiv(P, block_p) < FEW_PROGRAMS:
        values = 4096
    block_r = min(max(values // block_p, 1), triton.next_power_of_2(max(R, 1)))
    return block_r, block_p, 4


def _z_shape(x: torch.Tensor) -> tuple[int, int, int, int]:
    T, B, H, _, P = x.shape
    return T, B, H, P


@torch.library.custom_op("snnkernels::spiking_attention_gate_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def gate_fwd(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, lif: list[float], hard_reset: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Y = x * LIF(Z) in x's dtype and (dense) layout, Z = sum over axis 3 of a (* b), fp32 [T, B, heads, d])."""
    y = torch.empty_like(x)
    z = torch.empty(_z_shape(x), dtype=torch.float32, device=x.device)
    T, B, H, R, P = x.shape
    if y.numel() == 0:
        return y, z.zero_()
    block_r, block_p, warps = gate_tiles(R, P, B * H)
    with on_device_of(x):
        K.gate_fwd_kernel[(B * H, triton.cdiv(P, block_p))](
            x,
            a,
            a if b is None else b,
            y,
            z,
            T,
            B,
            H,
            R,
            P,
            *x.stride(),
            *a.stride(),
            *(a if b is None else b).stride(),
            *y.stride(),
            **_lif_kwargs(lif, backward=False),
            HAS_B=b is not None,
            HARD_RESET=hard_reset,
            BLOCK_R=block_r,
            BLOCK_P=block_p,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return y, z


@gate_fwd.register_fake
def _(x, a, b, lif, hard_reset):
    return torch.empty_like(x), x.new_empty(_z_shape(x), dtype=torch.float32)


@torch.library.custom_op("snnkernels::spiking_attention_gate_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def gate_bwd(
    grad: torch.Tensor,
    x: torch.Tensor,
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    z: torch.Tensor,
    lif: list[float],
    sg_id: int,
    hard_reset: bool,
    detach_reset: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dx, dL/da, dL/db (empty without b)) of ``gate_fwd`` given dL/dY; each in its input's (dense) layout.
    Without b, dL/da = dL/dZ broadcast needs no value of a: pass ``a=None`` (dL/da then takes x's layout)."""
    if a is None:
        assert b is None, "a product's gradient needs both factors"
        a = x  # only its strides are read: the layout of dL/da
    dx, da = torch.empty_like(x), torch.empty_like(a)
    db = torch.empty_like(b) if b is not None else a.new_empty((0,))
    T, B, H, R, P = x.shape
    if x.numel() == 0:
        return dx, da.zero_(), db.zero_()
    h, ds = torch.empty_like(z), torch.empty_like(z)
    block_r, block_p, warps = gate_tiles(R, P)
    with on_device_of(x):
        K.gate_bwd_kernel[(B * H, triton.cdiv(P, block_p))](
            grad,
            x,
            a,
            a if b is None else b,
            z,
            dx,
            da,
            da if b is None else db,
            h,
            ds,
            T,
            B,
            H,
            R,
            P,
            *grad.stride(),
            *x.stride(),
            *a.stride(),
            *(a if b is None else b).stride(),
            **_lif_kwargs(lif, backward=True),
            HAS_B=b is not None,
            HARD_RESET=hard_reset,
            DETACH_RESET=detach_reset,
            SG_ID=sg_id,
            BLOCK_R=block_r,
            BLOCK_P=block_p,
            num_warps=warps,
            **COMPILE_OPTIONS,
        )
    return dx, da, db


@gate_bwd.register_fake
def _(grad, x, a, b, z, lif, sg_id, hard_reset, detach_reset):
    a = x if a is None else a
    return torch.empty_like(x), torch.empty_like(a), torch.empty_like(b) if b is not None else a.new_empty((0,))


class _GateFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, a, b, lif: list[float], sg_id: int, hard: bool, detach: bool):
        y, z = gate_fwd(x, a, b, lif, hard)
        ctx.settings = (lif, sg_id, hard, detach)
        # without b the sum's gradient is a broadcast: a itself is not kept (docs/spiking_attention.md "Q-K attention")
        ctx.save_for_backward(x, a if b is not None else None, b, z)
        ctx.mark_non_differentiable(z)
        return y, z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, _grad_z: torch.Tensor):
        x, a, b, z = ctx.saved_tensors
        dx, da, db = gate_bwd(grad, x, a, b, z, *ctx.settings)
        return dx, da, db if b is not None else None, None, None, None, None


def gate_attention_fused(
    x: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, lif: AttentionLIF, token: bool
) -> torch.Tensor:
    """``x * LIF(Z)`` with Z = sum over tokens (``token=False``: one neuron per channel, SDSA and the Q-K channel
    attention) or over the head's channels (``token=True``: one per token, the Q-K token attention) of
    ``a`` (* ``b``); x, a, b [T, B, heads, N, d], any strides. The result has x's layout (when dense)."""
    floats, sg_id, hard, detach = lif_arguments(lif)
    if token:  # the channel sweep on the transposed views: the summed axis is always axis 3
        x, a = x.transpose(-1, -2), a.transpose(-1, -2)
        b = None if b is None else b.transpose(-1, -2)
    x, a = _dense(x), _dense(a)
    b = None if b is None else _dense(b)
    y, _ = _GateFunction.apply(*distinct(x, a, b), floats, sg_id, hard, detach)
    return y.transpose(-1, -2) if token else y


# The op registry's entries (ops/registry.py): binary [T, B, heads, N, d] inputs, one contiguous and one in the
# official [T, B, C, N] layout; the attention LIF (tau 2, threshold 0.5, hard reset, Sigmoid(4)) as ``lif``.

_ATTN_LIF = [0.5, 0.5, 0.0, 0.5, 0.0, 0.0, 4.0]


def _heads(dev: str, official: bool) -> torch.Tensor:
    T, B, heads, n, d = 3, 2, 2, 5, 3
    if official:  # [T, B, C, N] viewed as [T, B, heads, N, d]
        return (rand(dev, T, B, heads * d, n) > 0.5).float().view(T, B, heads, d, n).transpose(-1, -2)
    return (rand(dev, T, B, heads, n, d) > 0.5).float()


def _ssa_fwd_samples(dev: str) -> list[tuple]:
    return [(_heads(dev, o), _heads(dev, o), _heads(dev, o), 0.125, _ATTN_LIF, True) for o in (False, True)]


def _ssa_bwd_samples(dev: str) -> list[tuple]:
    out = []
    for official, sg in ((False, Sigmoid.id), (True, Triangle.id)):
        q, k, v = _heads(dev, official), _heads(dev, official), _heads(dev, official)
        out.append((torch.randn_like(q), q, k, v, 0.25, _ATTN_LIF, sg, True, True))
    return out


def _gate_fwd_samples(dev: str) -> list[tuple]:
    return [(_heads(dev, o), _heads(dev, o), _heads(dev, o) if o else None, _ATTN_LIF, True) for o in (False, True)]


def _gate_bwd_samples(dev: str) -> list[tuple]:
    out = []
    for official in (False, True):
        x, a, b = _heads(dev, official), _heads(dev, official), _heads(dev, official) if official else None
        _, z = registered_op("spiking_attention_gate_fwd")(x, a, b, _ATTN_LIF, True)
        # without b the op needs no value of a (a=None), as its autograd calls it
        out.append((torch.randn_like(x), x, a if official else None, b, z, _ATTN_LIF, Sigmoid.id, True, official))
    return out


# The compile variants (python_tests/kernels/triton_aot.py): the papers' head shape (N = 196 tokens, d = 64; d = 32
# once), every dtype forward, the backward with the surrogates and reset modes in turn.
_AOT_SHAPES = ((196, 64, ("fp32", "fp16", "bf16")), (196, 32, ("fp32",)))


def _ssa_variants() -> Iterator[AotVariant]:
    for N, D, dtypes in _AOT_SHAPES:
        block_n, block_d, warps = ssa_tiles(N, D)
        tile = dict(BLOCK_N=block_n, BLOCK_D=block_d)
        for i, dtype in enumerate(dtypes):
            yield K.ssa_fwd_kernel, {"q_ptr", "s_ptr"}, dtype, dict(tile, HARD_RESET=i != 1), warps
            bwd = dict(tile, HARD_RESET=i != 1, DETACH_RESET=i % 2 == 0, SG_ID=i)
            yield K.ssa_bwd_kernel, {"g_ptr", "q_ptr"}, dtype, bwd, warps


def _gate_variants() -> Iterator[AotVariant]:
    # the forward's wide tile, which gate_fwd takes when batch x heads is small (Q-K channel attention)
    block_r, block_p, warps = gate_tiles(784, 24, programs=1)
    for i, dtype in enumerate(("fp32", "bf16")):
        wide = dict(BLOCK_R=block_r, BLOCK_P=block_p, HAS_B=i == 1, HARD_RESET=True)
        yield K.gate_fwd_kernel, {"x_ptr", "a_ptr", "b_ptr", "y_ptr"}, dtype, wide, warps
    for N, D, dtypes in _AOT_SHAPES:
        block_r, block_p, warps = gate_tiles(N, D)
        for i, dtype in enumerate(dtypes):
            fwd = dict(BLOCK_R=block_r, BLOCK_P=block_p, HAS_B=i != 1, HARD_RESET=i != 2)
            yield K.gate_fwd_kernel, {"x_ptr", "a_ptr", "b_ptr", "y_ptr"}, dtype, fwd, warps
            bwd = dict(fwd, DETACH_RESET=i % 2 == 0, SG_ID=i)
            yield (
                K.gate_bwd_kernel,
                {"g_ptr", "x_ptr", "a_ptr", "b_ptr", "dx_ptr", "da_ptr", "db_ptr"},
                dtype,
                bwd,
                warps,
            )


# The benchmark rows (bench/attention.py): each core with its LIF on binary q, k (, v) [T, B, C, H * W] as the Q / K
# / V neurons give them, the official [T, B, C, N] spikes split into 8 heads (where C allows) and merged by views;
# timed at Spikformer-8-512 / SDT 8-512 on ImageNet (14 x 14 tokens, 8 heads of 64) and QKFormer's stage 1 (28 x 28
# tokens, C = 192).


def _bench_row(name: str, entry: str, n_inputs: int, gpu_shape: tuple[int, ...]) -> BenchRow:
    def inputs(shape, dtype, device, gen):
        T, B, C, H, W = shape
        spikes = [
            (torch.rand(T, B, C, H * W, generator=gen, device=device) < 0.3).to(dtype).requires_grad_()
            for _ in range(n_inputs)
        ]
        return spikes, spikes, torch.randn(shape, generator=gen, device=device).to(dtype)

    def run(shape, backend):
        from .. import functional

        T, B, C, H, W = shape
        heads, fn = math.gcd(C, 8), getattr(functional, entry)

        def attention(*spikes: torch.Tensor) -> torch.Tensor:
            views = [x.view(T, B, heads, C // heads, H * W).transpose(-1, -2) for x in spikes]
            return fn(*views, backend=backend).transpose(-1, -2).reshape(T, B, C, H, W)

        return attention

    return BenchRow(name, inputs, run, gpu_shapes=(gpu_shape,), cpu_shapes=((4, 2, 64, 8, 8),))


OPS = (
    triton_entry(
        "spiking_attention_ssa_fwd",
        __name__,
        _ssa_fwd_samples,
        "ssa_fwd_kernel",
        aot=_ssa_variants,
        bench=(_bench_row("ssa", "spiking_self_attention", 3, (4, 32, 512, 14, 14)),),
    ),
    triton_entry("spiking_attention_ssa_bwd", __name__, _ssa_bwd_samples, "ssa_bwd_kernel"),
    triton_entry(
        "spiking_attention_gate_fwd",
        __name__,
        _gate_fwd_samples,
        "gate_fwd_kernel",
        aot=_gate_variants,
        bench=(
            _bench_row("sdsa", "spike_driven_self_attention", 3, (4, 32, 512, 14, 14)),
            _bench_row("qk_token", "qk_token_attention", 2, (4, 32, 192, 28, 28)),
            _bench_row("qk_channel", "qk_channel_attention", 2, (4, 32, 192, 28, 28)),
        ),
    ),
    triton_entry("spiking_attention_gate_bwd", __name__, _gate_bwd_samples, "gate_bwd_kernel"),
)
