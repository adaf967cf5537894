"""Triton implementation of the leaky-neuron ops: launchers and registration.

Registers ``snnkernels::leaky_fwd_triton`` / ``snnkernels::leaky_bwd_triton`` for CUDA tensors, and for
CPU tensors too, where Triton's interpreter (``TRITON_INTERPRET=1``) runs the same kernels in tests.
``snnkernels::leaky_fwd_counted_triton`` (``COUNTED_FWD_SCHEMA``) is the forward that also returns the
spikes per step, counted in registers by the kernel (no second pass over the spikes); its backward is
``leaky_bwd_triton``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from ..backends import triton_interpreter_enabled
from ..kernels.triton.leaky import leaky_bwd_kernel, leaky_fwd_counted_kernel, leaky_fwd_kernel
from ._device import on_device_of
from .layout import match_layout
from .leaky import (
    CHECKPOINT_CHUNK,
    COUNTED_FWD_SCHEMA,
    channel_stride,
    define_leaky_ops,
    fake_fwd_counted,
    neurons_per_step,
    new_bwd_outputs,
    new_fwd_outputs,
    register_forward_autograd,
)
from .triton_launch import COMPILE_OPTIONS, f32

__all__ = [
    "leaky_fwd_triton",
    "leaky_bwd_triton",
    "leaky_fwd_counted_triton",
    "LaunchConfig",
    "launch_config",
    "DEFAULT_CHUNK",
    "COMPILE_OPTIONS",
]

DEFAULT_CHUNK = CHECKPOINT_CHUNK  # recompute granularity of the backward (ops/leaky.py)


@dataclass(frozen=True)
class LaunchConfig:
    block: int
    num_warps: int


def launch_config(n: int, backward: bool, itemsize: int = 4, coefficients: bool = False) -> LaunchConfig:
    """Fixed launch settings for x's element size ``itemsize``. The interpreter costs ~1 ms per program and step, so
    it gets one big block. On the GPU the forward takes 4 neurons per thread (one 16-byte fp32 access per tensor and
    step); the backward stashes CHUNK potentials per neuron in registers, so it takes 2 (8-byte fp32 accesses) to
    keep occupancy up, and 4 for 2-byte dtypes so that x, dL/ds and dL/dx still move in 8-byte accesses, unless
    ``coefficients`` (per-channel coefficient tensors or their gradients: twice the registers, which 4 neurons a
    thread would take to the 255 limit). A 2-byte forward stays at 4 (8-byte accesses): at 8 its fp32 checkpoint
    store goes through shared memory, two block barriers a chunk (bench/NOTES.md "8- and 16-byte accesses for
    2-byte dtypes")."""
    if triton_interpreter_enabled():
        return LaunchConfig(block=min(max(triton.next_power_of_2(n), 16), 8192), num_warps=1)
    per_thread = (4 if itemsize <= 2 and not coefficients else 2) if backward else 4
    return LaunchConfig(block=per_thread * 32 * 4, num_warps=4)


def _channel_dims(x: torch.Tensor, *coefficients: torch.Tensor | None) -> tuple[int, int]:
    """(channel stride, channel count) that the coefficient tensors are indexed with."""
    c = max([1] + [t.numel() for t in coefficients if t is not None])
    return channel_stride(x, c), c


def _fwd_impl(
    x,
    v_init,
    decay_t,
    gain_t,
    bias_t,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    hard_reset,
    strict,
    detach_reset,
    surrogate_id,
    surrogate_param,
    training,
    store_final_state,
    chunk,
    store_v_seq=False,
):
    outputs = new_fwd_outputs(x, training, store_final_state, chunk, store_v_seq)
    _launch_fwd(
        leaky_fwd_kernel,
        launch_config(neurons_per_step(x), backward=False, itemsize=x.element_size()),
        (),
        {},
        outputs,
        x,
        v_init,
        decay_t,
        gain_t,
        bias_t,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
        v_init_value,
        hard_reset,
        strict,
        training,
        store_final_state,
        chunk,
        store_v_seq,
    )
    return outputs


def _counted_fwd_impl(
    x,
    v_init,
    decay_t,
    gain_t,
    bias_t,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    hard_reset,
    strict,
    detach_reset,
    surrogate_id,
    surrogate_param,
    training,
    store_final_state,
    chunk,
    store_v_seq=False,
):
    if chunk > 32:
        raise ValueError(f"leaky_fwd_counted_triton keeps a chunk's spikes as int32 bits: chunk <= 32, got {chunk}")
    T, n = x.shape[0], neurons_per_step(x)
    outputs = new_fwd_outputs(x, training, store_final_state, chunk, store_v_seq)
    cfg = _counted_launch_config(n, x.element_size())
    # GROUPS int32 slots per step and program (each counts at most BLOCK spikes), all written by the kernel
    partial = x.new_empty((T, triton.cdiv(n, cfg.block) * cfg.num_warps), dtype=torch.int32)
    counting = {"STEPS": triton.next_power_of_2(chunk), "GROUPS": cfg.num_warps}
    _launch_fwd(
        leaky_fwd_counted_kernel,
        cfg,
        (partial,),
        counting,
        outputs,
        x,
        v_init,
        decay_t,
        gain_t,
        bias_t,
        decay,
        gain,
        bias,
        v_threshold,
        v_reset,
        v_init_value,
        hard_reset,
        strict,
        training,
        store_final_state,
        chunk,
        store_v_seq,
    )
    return *outputs, partial.sum(1, dtype=torch.int64)


def _counted_launch_config(n: int, itemsize: int = 4) -> LaunchConfig:
    """The forward's settings, with a block of at least one 32-lane row per warp (the kernel's reshape)."""
    cfg = launch_config(n, backward=False, itemsize=itemsize)
    return LaunchConfig(block=max(cfg.block, 32 * cfg.num_warps), num_warps=cfg.num_warps)


def _launch_fwd(
    kernel,
    cfg: LaunchConfig,
    extra_ptrs: tuple,
    extra_constexprs: dict,
    outputs: tuple,
    x,
    v_init,
    decay_t,
    gain_t,
    bias_t,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    hard_reset,
    strict,
    training,
    store_final_state,
    chunk,
    store_v_seq,
) -> None:
    """Launch the forward entry point ``kernel`` into ``outputs`` (spikes, v_final, checkpoints, v_seq);
    ``extra_ptrs`` follow ``v_seq_ptr``."""
    spikes, v_final, ckpt, v_seq = outputs
    T, n = x.shape[0], neurons_per_step(x)
    if n == 0:
        return
    spatial, channels = _channel_dims(x, decay_t, gain_t, bias_t)
    dummy = spikes  # stands in for absent optional pointers; never dereferenced (constexpr-guarded)
    with on_device_of(x):
        kernel[(triton.cdiv(n, cfg.block),)](
            x,
            dummy if v_init is None else v_init,
            dummy if decay_t is None else decay_t,
            dummy if gain_t is None else gain_t,
            dummy if bias_t is None else bias_t,
            spikes,
            v_final if store_final_state else dummy,
            ckpt if training else dummy,
            v_seq if store_v_seq else dummy,
            *extra_ptrs,
            T,
            n,
            spatial,
            channels,
            *f32(decay, gain, bias, v_threshold, v_reset, v_init_value),
            HAS_V_INIT=v_init is not None,
            DECAY_T=decay_t is not None,
            GAIN_T=gain_t is not None,
            BIAS_T=bias_t is not None,
            HARD_RESET=hard_reset,
            STRICT=strict,
            TRAINING=training,
            STORE_FINAL=store_final_state,
            STORE_V_SEQ=store_v_seq,
            **extra_constexprs,
            CHUNK=chunk,
            BLOCK=cfg.block,
            num_warps=cfg.num_warps,
            **COMPILE_OPTIONS,
        )


def _bwd_impl(
    grad_spikes,
    grad_v_final,
    x,
    v_init,
    checkpoints,
    decay_t,
    gain_t,
    bias_t,
    decay,
    gain,
    bias,
    v_threshold,
    v_reset,
    v_init_value,
    hard_reset,
    strict,
    detach_reset,
    surrogate_id,
    surrogate_param,
    chunk,
    need_grad_v_init,
    need_grad_decay,
    need_grad_gain,
    need_grad_bias,
    grad_v_seq=None,
):
    T, n = x.shape[0], neurons_per_step(x)
    if grad_v_seq is not None:
        grad_v_seq = match_layout(grad_v_seq.to(torch.float32), x)  # walked as x's [T, N]
    grad_x, grad_v_init, *partials = new_bwd_outputs(
        x, need_grad_v_init, need_grad_decay, need_grad_gain, need_grad_bias
    )
    if n == 0:
        return grad_x, grad_v_init, *partials
    spatial, channels = _channel_dims(x, decay_t, gain_t, bias_t)
    coefficients = any(t is not None for t in (decay_t, gain_t, bias_t)) or need_grad_decay or need_grad_gain
    cfg = launch_config(n, backward=True, itemsize=x.element_size(), coefficients=coefficients or need_grad_bias)
    dummy = grad_x
    with on_device_of(x):
        leaky_bwd_kernel[(triton.cdiv(n, cfg.block),)](
            grad_spikes,
            dummy if grad_v_final is None else grad_v_final,
            x,
            dummy if v_init is None else v_init,
            checkpoints,
            dummy if decay_t is None else decay_t,
            dummy if gain_t is None else gain_t,
            dummy if bias_t is None else bias_t,
            grad_x,
            grad_v_init if need_grad_v_init else dummy,
            *[p if p.numel() else dummy for p in partials],
            dummy if grad_v_seq is None else grad_v_seq,
            T,
            n,
            spatial,
            channels,
            *f32(decay, gain, bias, v_threshold, v_reset, v_init_value, surrogate_param),
            HAS_V_INIT=v_init is not None,
            HAS_GRAD_V_FINAL=grad_v_final is not None,
            STORE_GRAD_V_INIT=need_grad_v_init,
            DECAY_T=decay_t is not None,
            GAIN_T=gain_t is not None,
            BIAS_T=bias_t is not None,
            NEED_GRAD_DECAY=need_grad_decay,
            NEED_GRAD_GAIN=need_grad_gain,
            NEED_GRAD_BIAS=need_grad_bias,
            HAS_GRAD_V_SEQ=grad_v_seq is not None,
            HARD_RESET=hard_reset,
            STRICT=strict,
            DETACH_RESET=detach_reset,
            SG_ID=surrogate_id,
            CHUNK=chunk,
            BLOCK=cfg.block,
            num_warps=cfg.num_warps,
            **COMPILE_OPTIONS,
        )
    return grad_x, grad_v_init, *partials


leaky_fwd_triton, leaky_bwd_triton = define_leaky_ops("triton", _fwd_impl, _bwd_impl, ("CPU", "CUDA"))


def _define_counted_forward() -> object:
    name = "snnkernels::leaky_fwd_counted_triton"
    torch.library.define(name, COUNTED_FWD_SCHEMA)
    for key in ("CPU", "CUDA"):
        torch.library.impl(name, key)(_counted_fwd_impl)
    return register_forward_autograd(name, leaky_bwd_triton, fake_fwd_counted)


leaky_fwd_counted_triton = _define_counted_forward()
