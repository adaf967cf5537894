"""STAA-LIF's whole time loop as one persistent kernel per direction (``kernels.triton.staa_loop``).

``staa_loop_persistent`` computes what ``staa_step_triton.staa_loop_fused`` computes (the loop of
``reference.staa.staa_lif_reference`` from the PE + GC features, zero initial state, spikes only), with
one program per sample walking all T steps: the gates' MLP, the gated fire-and-reset sweep and the next
step's pooling inside one launch, and one launch back. The sums run in another order than the step
path's (the MLP in channel chunks), so the two agree to fp32 rounding of the gates: the spikes up to a
flip at the threshold.

Which loop is faster depends on the GPU and the layer (bench/NOTES.md): the step kernels fill the GPU but
launch several kernels a step; this one launches once but runs B programs. ``staa_lif_fused`` takes
``loop_kernel="steps"`` (default) or ``"persistent"``.
"""

from __future__ import annotations

from typing import Any

import torch
import triton

from ..backends import triton_interpreter_enabled
from ..kernels.triton.staa_loop import SCALED_LOGITS, SIGMOID, SOFTMAX, staa_loop_bwd_kernel, staa_loop_fwd_kernel
from ..reference.staa import SAParams
from ..surrogate import Sigmoid, Surrogate, Triangle
from ._device import on_device_of
from .pooled_attention_triton import row_sums
from .registry import (
    SAMPLE_SHAPE,
    rand,
    randn,
    registered_op,
    triton_entry,
)
from .triton_launch import COMPILE_OPTIONS, f32, half_tiles

__all__ = ["staa_loop_persistent", "staa_loop_fwd", "staa_loop_bwd", "GATE_IDS"]

GATE_IDS = {"sigmoid": SIGMOID, "softmax": SOFTMAX, "scaled_logits": SCALED_LOGITS}


# ptxas aims at two 256-thread programs an SM (128 registers) and spills to get there (sm_80, C = 256 at 8 x 8);
# a persistent program holds its SM alone at B <= 132, so it may use what the SM has (bench/NOTES.md
# "The persistent STAA backward: two row blocks a trip")
LOOP_MAXNREG = 255


def _blocks(C: int, S: int, hid: int) -> dict:
    """The sweep's tile and the MLP's chunk (all hidden units x BLOCK_K channels). GPU: one program holds an
    SM alone, so 8 warps, and the step kernels' 1024-value tile (``triton_launch.half_tiles``: the backward
    keeps four row accumulators) with 4 values a thread; MLP chunks of at most 2048 weights (two chunks of
    W2 live at once). These keep every variant free of spills at ResNet-20 sizes
    (python_tests/kernels/triton_aot.py)."""
    block_r, block_s, warps = half_tiles(C, S)
    block_hid = triton.next_power_of_2(max(hid, 1))
    interpreted = triton_interpreter_enabled()
    block_k = max(min(triton.next_power_of_2(max(C, 1)), (1 << 15 if interpreted else 2048) // block_hid), 1)
    return dict(
        BLOCK_R=block_r, BLOCK_S=block_s, BLOCK_K=block_k, BLOCK_HID=block_hid, num_warps=warps if interpreted else 8
    )


def _dims(y: torch.Tensor, w1: torch.Tensor | None) -> tuple[int, int, int, int, int]:
    T, B, C, H, W = y.shape
    return T, B, C, H * W, 0 if w1 is None else w1.shape[0]


def _fwd_outputs(y: torch.Tensor, has_sa: bool, hid: int, spike_dtype: torch.dtype, training: bool):
    T, B, C = y.shape[:3]
    slots = T if training else min(T, 2)
    fp32 = dict(dtype=torch.float32, device=y.device)
    return (
        torch.empty(y.shape, dtype=spike_dtype, device=y.device),
        torch.empty((slots, *y.shape[1:]), **fp32),
        torch.empty((T, B, C), **fp32),
        torch.empty((T, B, C), **fp32),
        torch.empty((T, B, hid) if has_sa else (0,), **fp32),
        torch.empty((T, B, C), **fp32),
        torch.empty((T, B, C) if has_sa else (0,), **fp32),
    )


@torch.library.custom_op("snnkernels::staa_loop_fwd", mutates_args=(), device_types=("cpu", "cuda"))
def staa_loop_fwd(
    y: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    w1: torch.Tensor | None,
    w2: torch.Tensor | None,
    drop: torch.Tensor | None,
    alpha: float,
    gate: int,
    v_threshold: float,
    v_reset: float,
    spike_dtype: torch.dtype,
    training: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes, states [T or 2, B, C, H, W] fp32 (every H_t when training), ga, gb [T, B, C], hidden units
    [T, B, HID], mean_hw(H_{t-1}) [T, B, C], mean_hw(Y_t) [T, B, C]); y fp32 contiguous [T, B, C, H, W], a, b
    fp32 [C], w1 [HID, C], w2 [2C, HID] fp32 or None (no step attention), drop int32 [T, B] or None."""
    T, B, C, S, hid = _dims(y, w1)
    out = _fwd_outputs(y, w1 is not None, hid, spike_dtype, training)
    spikes, states, ga, gb, hidden, mean_h, mean_y = out
    if y.numel() == 0:
        return out
    if w1 is not None:
        torch.div(row_sums(y, None)[0], S, out=mean_y)
    hsum = y.new_empty((B, C))
    with on_device_of(y):
        staa_loop_fwd_kernel[(B,)](
            y,
            mean_y if w1 is not None else a,
            a,
            b,
            a if w1 is None else w1,
            a if w2 is None else w2,
            a if drop is None else drop,
            spikes,
            states,
            ga,
            gb,
            hidden if w1 is not None else a,
            mean_h,
            hsum,
            T,
            B,
            C,
            S,
            max(hid, 1),
            states.shape[0],
            *f32(alpha, v_threshold, v_reset),
            HAS_SA=w1 is not None,
            GATE=gate,
            HAS_DROP=drop is not None,
            **_blocks(C, S, hid),
            **COMPILE_OPTIONS,
            maxnreg=LOOP_MAXNREG,
        )
    return out


@staa_loop_fwd.register_fake
def _(y, a, b, w1, w2, drop, alpha, gate, v_threshold, v_reset, spike_dtype, training):
    T, B, C, S, hid = _dims(y, w1)
    return _fwd_outputs(y, w1 is not None, hid, spike_dtype, training)


def _bwd_outputs(y: torch.Tensor, a: torch.Tensor, w1: torch.Tensor | None, w2: torch.Tensor | None):
    return (
        torch.empty_like(y),
        torch.empty_like(a),
        torch.empty_like(a),
        torch.empty_like(w1) if w1 is not None else a.new_empty((0,)),
        torch.empty_like(w2) if w2 is not None else a.new_empty((0,)),
    )


@torch.library.custom_op("snnkernels::staa_loop_bwd", mutates_args=(), device_types=("cpu", "cuda"))
def staa_loop_bwd(
    grad_spikes: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    w1: torch.Tensor | None,
    w2: torch.Tensor | None,
    drop: torch.Tensor | None,
    states: torch.Tensor,
    ga: torch.Tensor,
    gb: torch.Tensor,
    hidden: torch.Tensor,
    mean_h: torch.Tensor,
    mean_y: torch.Tensor,
    alpha: float,
    gate: int,
    v_threshold: float,
    v_reset: float,
    detach_reset: bool,
    surrogate_id: int,
    surrogate_param: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dy fp32, dL/da [C], dL/db [C], dL/dw1, dL/dw2 (empty without step attention)) given dL/ds; the
    per-(t, b) partial gradients are summed here in a fixed order."""
    T, B, C, S, hid = _dims(y, w1)
    dy, da, db, dw1, dw2 = _bwd_outputs(y, a, w1, w2)
    if y.numel() == 0:
        return dy, da.zero_(), db.zero_(), dw1.zero_(), dw2.zero_()
    fp32 = dict(dtype=torch.float32, device=y.device)
    has_sa = w1 is not None
    da_parts, db_parts = torch.zeros((2 * T, B, C), **fp32), torch.zeros((2 * T, B, C), **fp32)
    dw1_parts = torch.empty((T, B, hid, C) if has_sa else (0,), **fp32)
    dw2_parts = torch.empty((T, B, 2 * C, hid) if has_sa else (0,), **fp32)
    with on_device_of(y):
        staa_loop_bwd_kernel[(B,)](
            grad_spikes.contiguous(),
            y,
            mean_y if has_sa else a,
            a,
            b,
            a if w1 is None else w1,
            a if w2 is None else w2,
            a if drop is None else drop,
            states,
            ga,
            gb,
            hidden if has_sa else a,
            mean_h,
            dy,
            torch.empty((B, C, S), **fp32),
            torch.empty((B, C, S), **fp32),
            torch.zeros((4, B, C), **fp32),
            da_parts,
            db_parts,
            dw1_parts if has_sa else a,
            dw2_parts if has_sa else a,
            T,
            B,
            C,
            S,
            max(hid, 1),
            *f32(alpha, v_threshold, v_reset, surrogate_param),
            HAS_SA=has_sa,
            GATE=gate,
            HAS_DROP=drop is not None,
            DETACH_RESET=detach_reset,
            SG_ID=surrogate_id,
            **_blocks(C, S, hid),
            **COMPILE_OPTIONS,
            maxnreg=LOOP_MAXNREG,
        )
    da.copy_(da_parts.sum(dim=(0, 1)))
    db.copy_(db_parts.sum(dim=(0, 1)))
    if has_sa:
        dw1.copy_(dw1_parts.sum(dim=(0, 1)))
        dw2.copy_(dw2_parts.sum(dim=(0, 1)))
    return dy, da, db, dw1, dw2


@staa_loop_bwd.register_fake
def _(
    grad_spikes,
    y,
    a,
    b,
    w1,
    w2,
    drop,
    states,
    ga,
    gb,
    hidden,
    mean_h,
    mean_y,
    alpha,
    gate,
    v_threshold,
    v_reset,
    detach_reset,
    surrogate_id,
    surrogate_param,
):
    return _bwd_outputs(y, a, w1, w2)


class _STAALoopFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        y,
        a,
        b,
        w1,
        w2,
        drop,
        alpha,
        gate,
        v_threshold,
        v_reset,
        detach_reset,
        surrogate,
        spike_dtype,
        training,
    ):
        spikes, states, ga, gb, hidden, mean_h, mean_y = staa_loop_fwd(
            y, a, b, w1, w2, drop, alpha, gate, v_threshold, v_reset, spike_dtype, training
        )
        ctx.save_for_backward(y, a, b, w1, w2, drop, states, ga, gb, hidden, mean_h, mean_y)
        ctx.settings = (alpha, gate, v_threshold, v_reset, detach_reset, surrogate.id, surrogate.param)
        return spikes

    @staticmethod
    def backward(ctx: Any, grad_spikes):
        dy, da, db, dw1, dw2 = staa_loop_bwd(grad_spikes, *ctx.saved_tensors, *ctx.settings)
        has_sa = ctx.saved_tensors[3] is not None
        return (dy, da, db, dw1 if has_sa else None, dw2 if has_sa else None, *([None] * 9))


def staa_loop_persistent(
    y_seq: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    sa: SAParams | None,
    mask: torch.Tensor | None,
    *,
    alpha: float,
    sa_gate: str,
    v_threshold: float,
    v_reset: float,
    detach_reset: bool,
    surrogate: Surrogate,
    spike_dtype: torch.dtype,
) -> torch.Tensor:
    """Spikes of the loop of ``staa_lif_reference`` from zero state, as ``staa_step_triton.staa_loop_fused``
    (same arguments but ``v_init``), on one persistent program per sample: ``y_seq`` fp32 [T, B, C, H, W],
    ``a``, ``b`` [C] or one value, ``mask`` bool [T, B] (True = drop) or None."""
    C = y_seq.shape[2]
    a = a.float().reshape(-1).expand(C).contiguous()
    b = b.float().reshape(-1).expand(C).contiguous()
    w1 = w2 = None
    if sa is not None:
        w1, w2 = sa.w1.float().contiguous(), sa.w2.float().contiguous()
    drop = None if mask is None else mask.to(torch.int32).contiguous()
    y = y_seq.float().contiguous()
    training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (y, a, b, w1, w2))
    return _STAALoopFunction.apply(
        y,
        a,
        b,
        w1,
        w2,
        drop,
        float(alpha),
        GATE_IDS[sa_gate],
        float(v_threshold),
        float(v_reset),
        bool(detach_reset),
        surrogate,
        spike_dtype,
        training,
    )


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _staa_loop_inputs(dev: str, attention: bool) -> tuple:
    """(y, a, b, w1 [HID, C], w2 [2C, HID], drop int32 [T, B]), without the step attention and TSRD when
    not ``attention``."""
    T, B, C, H, W = SAMPLE_SHAPE
    y, a, b = 2 * rand(dev, T, B, C, H, W), rand(dev, C), rand(dev, C)
    if not attention:
        return y, a, b, None, None, None
    drop = (torch.rand(T, B, device=dev) > 0.3).to(torch.int32)
    return y, a, b, randn(dev, 2, C), randn(dev, 2 * C, 2), drop


def _staa_loop_fwd_samples(dev: str) -> list[tuple]:
    # gate: 0 sigmoid, 1 softmax, 2 scaled logits (kernels/triton/staa_loop.py)
    return [
        (*_staa_loop_inputs(dev, True), 0.5, 1, 1.0, 0.0, torch.float32, True),
        (*_staa_loop_inputs(dev, False), 0.5, 0, 1.0, 0.0, torch.float16, False),
    ]


def _staa_loop_bwd_samples(dev: str) -> list[tuple]:
    out = []
    for attention, gate, sg in ((True, 2, Triangle.id), (False, 0, Sigmoid.id)):
        inputs = _staa_loop_inputs(dev, attention)
        spikes, states, ga, gb, hidden, mean_h, mean_y = registered_op("staa_loop_fwd")(
            *inputs, 0.5, gate, 1.0, 0.0, torch.float32, True
        )
        out.append(
            (
                torch.randn_like(spikes),
                *inputs,
                states,
                ga,
                gb,
                hidden,
                mean_h,
                mean_y,
                0.5,
                gate,
                1.0,
                0.0,
                attention,
                sg,
                1.0,
            )
        )
    return out


OPS = (
    triton_entry("staa_loop_fwd", __name__, _staa_loop_fwd_samples, "staa_loop_fwd_kernel"),
    triton_entry("staa_loop_bwd", __name__, _staa_loop_bwd_samples, "staa_loop_bwd_kernel"),
)
