"""Triton implementation of the leaky-neuron ops: launchers and registration.

Registers ``snnkernels::leaky_fwd_triton`` / ``snnkernels::leaky_bwd_triton`` for CUDA tensors, and for
CPU tensors too, where Triton's interpreter (``TRITON_INTERPRET=1``) runs the same kernels in tests.
``snnkernels::leaky_fwd_counted_triton`` (``COUNTED_FWD_SCHEMA``) is the forward that also returns the
spikes per step, counted in registers by the kernel (no second pass over the spikes); its backward is
``leaky_bwd_triton``. ``snnkernels::leaky_fwd_packed_triton`` (``PACKED_FWD_SCHEMA``) also returns the spikes
at 1 bit each, written by the kernel as it fires (docs/spike_pack.md "Packed by the neuron"); its backward is
``leaky_bwd_triton`` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from ..backends import triton_interpreter_enabled
from ..kernels.triton.leaky import leaky_bwd_kernel, leaky_fwd_counted_kernel, leaky_fwd_kernel, leaky_fwd_packed_kernel
from ..surrogate import Triangle
from ._device import on_device_of
from .layout import match_layout
from .leaky import (
    CHECKPOINT_CHUNK,
    COUNTED_FWD_SCHEMA,
    PACKED_FWD_SCHEMA,
    channel_stride,
    define_leaky_ops,
    fake_fwd_counted,
    fake_fwd_packed,
    leaky_entries,
    neurons_per_step,
    new_bwd_outputs,
    new_fwd_outputs,
    new_spikes_packed,
    register_forward_autograd,
)
from .leaky_settings import BWD_ARGS, FWD_ARGS, Bound, bind
from .registry import (
    randn,
    triton_entry,
)
from .spike_pack_triton import spike_pack_triton
from .triton_launch import COMPILE_OPTIONS, f32

__all__ = [
    "leaky_fwd_triton",
    "leaky_bwd_triton",
    "leaky_fwd_counted_triton",
    "leaky_fwd_packed_triton",
    "packs_as_it_fires",
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


def _fwd_impl(*args, **kwargs):
    a = bind(FWD_ARGS, args, kwargs)
    outputs = new_fwd_outputs(a.x, a.training, a.store_final_state, a.chunk, a.store_v_seq)
    cfg = launch_config(neurons_per_step(a.x), backward=False, itemsize=a.x.element_size())
    _launch_fwd(leaky_fwd_kernel, cfg, (), {}, outputs, a)
    return outputs


def _counted_fwd_impl(*args, **kwargs):
    a = bind(FWD_ARGS, args, kwargs)
    if a.chunk > 32:
        raise ValueError(f"leaky_fwd_counted_triton keeps a chunk's spikes as int32 bits: chunk <= 32, got {a.chunk}")
    T, n = a.x.shape[0], neurons_per_step(a.x)
    outputs = new_fwd_outputs(a.x, a.training, a.store_final_state, a.chunk, a.store_v_seq)
    cfg = _counted_launch_config(n, a.x.element_size())
    # GROUPS int32 slots per step and program (each counts at most BLOCK spikes), all written by the kernel
    partial = a.x.new_empty((T, triton.cdiv(n, cfg.block) * cfg.num_warps), dtype=torch.int32)
    counting = {"STEPS": triton.next_power_of_2(a.chunk), "GROUPS": cfg.num_warps}
    _launch_fwd(leaky_fwd_counted_kernel, cfg, (partial,), counting, outputs, a)
    return *outputs, partial.sum(1, dtype=torch.int64)


def packs_as_it_fires(x: torch.Tensor) -> bool:
    """Whether ``leaky_fwd_packed_triton`` packs x's spikes inside the neuron kernel: x is contiguous (the kernel's
    memory order is then the layout's order) and a step has a multiple of 8 neurons (each program's neurons are
    whole bytes). Otherwise the op packs the spikes it stored in a pass of its own: the same bytes."""
    return x.is_contiguous() and neurons_per_step(x) % 8 == 0


def _packed_fwd_impl(*args, **kwargs):
    a = bind(FWD_ARGS, args, kwargs)
    outputs = new_fwd_outputs(a.x, a.training, a.store_final_state, a.chunk, a.store_v_seq)
    cfg = launch_config(neurons_per_step(a.x), backward=False, itemsize=a.x.element_size())
    if not packs_as_it_fires(a.x):
        _launch_fwd(leaky_fwd_kernel, cfg, (), {}, outputs, a)
        return *outputs, spike_pack_triton(outputs[0], False)
    if a.chunk > 32:
        raise ValueError(f"leaky_fwd_packed_triton keeps a chunk's spikes as int32 bits: chunk <= 32, got {a.chunk}")
    packed = new_spikes_packed(a.x)
    _launch_fwd(leaky_fwd_packed_kernel, cfg, (packed,), {"STEPS": triton.next_power_of_2(a.chunk)}, outputs, a)
    return *outputs, packed


def _counted_launch_config(n: int, itemsize: int = 4) -> LaunchConfig:
    """The forward's settings, with a block of at least one 32-lane row per warp (the kernel's reshape)."""
    cfg = launch_config(n, backward=False, itemsize=itemsize)
    return LaunchConfig(block=max(cfg.block, 32 * cfg.num_warps), num_warps=cfg.num_warps)


def _launch_fwd(kernel, cfg: LaunchConfig, extra_ptrs: tuple, extra_constexprs: dict, outputs: tuple, a: Bound) -> None:
    """Launch the forward entry point ``kernel`` into ``outputs`` (spikes, v_final, checkpoints, v_seq);
    ``extra_ptrs`` follow ``v_seq_ptr``; ``a``: the op's arguments (FWD_ARGS)."""
    spikes, v_final, ckpt, v_seq = outputs
    T, n = a.x.shape[0], neurons_per_step(a.x)
    if n == 0:
        return
    spatial, channels = _channel_dims(a.x, a.decay_t, a.gain_t, a.bias_t)
    dummy = spikes  # stands in for absent optional pointers; never dereferenced (constexpr-guarded)
    with on_device_of(a.x):
        kernel[(triton.cdiv(n, cfg.block),)](
            a.x,
            dummy if a.v_init is None else a.v_init,
            dummy if a.decay_t is None else a.decay_t,
            dummy if a.gain_t is None else a.gain_t,
            dummy if a.bias_t is None else a.bias_t,
            spikes,
            v_final if a.store_final_state else dummy,
            ckpt if a.training else dummy,
            v_seq if a.store_v_seq else dummy,
            *extra_ptrs,
            T,
            n,
            spatial,
            channels,
            *f32(a.decay, a.gain, a.bias, a.v_threshold, a.v_reset, a.v_init_value),
            HAS_V_INIT=a.v_init is not None,
            DECAY_T=a.decay_t is not None,
            GAIN_T=a.gain_t is not None,
            BIAS_T=a.bias_t is not None,
            HARD_RESET=a.hard_reset,
            STRICT=a.strict,
            TRAINING=a.training,
            STORE_FINAL=a.store_final_state,
            STORE_V_SEQ=a.store_v_seq,
            **extra_constexprs,
            CHUNK=a.chunk,
            BLOCK=cfg.block,
            num_warps=cfg.num_warps,
            **COMPILE_OPTIONS,
        )


def _bwd_impl(*args, **kwargs):
    a = bind(BWD_ARGS, args, kwargs)
    T, n = a.x.shape[0], neurons_per_step(a.x)
    # walked as x's [T, N]
    grad_v_seq = None if a.grad_v_seq is None else match_layout(a.grad_v_seq.to(torch.float32), a.x)
    grad_x, grad_v_init, *partials = new_bwd_outputs(
        a.x, a.need_grad_v_init, a.need_grad_decay, a.need_grad_gain, a.need_grad_bias
    )
    if n == 0:
        return grad_x, grad_v_init, *partials
    spatial, channels = _channel_dims(a.x, a.decay_t, a.gain_t, a.bias_t)
    coefficients = any(t is not None for t in (a.decay_t, a.gain_t, a.bias_t)) or a.need_grad_decay
    coefficients = coefficients or a.need_grad_gain or a.need_grad_bias
    cfg = launch_config(n, backward=True, itemsize=a.x.element_size(), coefficients=coefficients)
    dummy = grad_x
    with on_device_of(a.x):
        leaky_bwd_kernel[(triton.cdiv(n, cfg.block),)](
            a.grad_spikes,
            dummy if a.grad_v_final is None else a.grad_v_final,
            a.x,
            dummy if a.v_init is None else a.v_init,
            a.checkpoints,
            dummy if a.decay_t is None else a.decay_t,
            dummy if a.gain_t is None else a.gain_t,
            dummy if a.bias_t is None else a.bias_t,
            grad_x,
            grad_v_init if a.need_grad_v_init else dummy,
            *[p if p.numel() else dummy for p in partials],
            dummy if grad_v_seq is None else grad_v_seq,
            T,
            n,
            spatial,
            channels,
            *f32(a.decay, a.gain, a.bias, a.v_threshold, a.v_reset, a.v_init_value, a.surrogate_param),
            HAS_V_INIT=a.v_init is not None,
            HAS_GRAD_V_FINAL=a.grad_v_final is not None,
            STORE_GRAD_V_INIT=a.need_grad_v_init,
            DECAY_T=a.decay_t is not None,
            GAIN_T=a.gain_t is not None,
            BIAS_T=a.bias_t is not None,
            NEED_GRAD_DECAY=a.need_grad_decay,
            NEED_GRAD_GAIN=a.need_grad_gain,
            NEED_GRAD_BIAS=a.need_grad_bias,
            HAS_GRAD_V_SEQ=grad_v_seq is not None,
            HARD_RESET=a.hard_reset,
            STRICT=a.strict,
            DETACH_RESET=a.detach_reset,
            SG_ID=a.surrogate_id,
            CHUNK=a.chunk,
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


def _define_packed_forward() -> object:
    name = "snnkernels::leaky_fwd_packed_triton"
    torch.library.define(name, PACKED_FWD_SCHEMA)
    for key in ("CPU", "CUDA"):
        torch.library.impl(name, key)(_packed_fwd_impl)
    return register_forward_autograd(name, leaky_bwd_triton, fake_fwd_packed)


leaky_fwd_packed_triton = _define_packed_forward()


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _counted_fwd_samples(dev: str) -> list[tuple]:
    out = []
    for training in (True, False):
        x, v0 = randn(dev, 5, 2, 3, 4, grad=training), randn(dev, 2, 3, 4, grad=training)
        decay = torch.full((3,), 0.6, device=dev, requires_grad=training)
        out.append(
            (
                x,
                v0,
                decay,
                None,
                None,
                0.6,
                1.0,
                0.1,
                1.0,
                0.0,
                0.0,
                True,
                False,
                False,
                Triangle.id,
                1.0,
                training,
                True,
                2,
            )
        )
    return out


def _packed_fwd_samples(dev: str) -> list[tuple]:
    """The counted forward's samples (N = 24: packed in the kernel) and one with N = 15 (packed after it)."""
    odd = list(_counted_fwd_samples(dev)[0])
    odd[0], odd[1], odd[2] = randn(dev, 4, 3, 5, grad=True), None, None
    return [*_counted_fwd_samples(dev), tuple(odd)]


OPS = (
    *leaky_entries("triton", __name__, ("cpu", "cuda")),
    triton_entry("leaky_fwd_packed_triton", __name__, _packed_fwd_samples, "leaky_fwd_packed_kernel", autograd=True),
    triton_entry(
        "leaky_fwd_counted_triton",
        __name__,
        _counted_fwd_samples,
        "leaky_fwd_counted_kernel",
        autograd=True,
        aot_exempt={"leaky_fwd_counted_kernel": "python_tests/test_firing.py compiles it with its own AOT script"},
    ),
)
