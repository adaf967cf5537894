"""The leaky-neuron op pair, independent of the backend that implements it.

Every backend registers two ops with the schemas below, ``snnkernels::leaky_fwd_<backend>`` and
``snnkernels::leaky_bwd_<backend>``; this module gives them the same fake (meta) functions and the
same autograd wiring, so ``torch.compile`` sees an opaque op with exact output shapes and no graph
break, whichever backend runs it.

Data contract between forward and backward (the recompute schedule): with ``chunk`` = K, the
training forward returns ``checkpoints`` of shape [cdiv(T, K) - 1, N] (fp32), row i holding the state
v entering step (i + 1) * K; the backward re-reads ``x`` and rebuilds each chunk from its row (chunk 0
from ``v_init``). Coefficient tensors (``decay_t`` etc.) are fp32 of shape [C'] with C' = 1 or the
channel count C = x.shape[2]; their gradients come back from the backward as per-neuron partial sums
[N] (fp32), reduced here with plain torch sums so the result is deterministic (no float atomics).

Membrane sequence: with ``store_v_seq`` the forward also writes ``v_seq`` [T, ...] (fp32, x's layout), the
post-reset state of every step; without it ``v_seq`` is a 0-element tensor and the kernels compile without
its stores. It is differentiable: the backward takes ``grad_v_seq`` and adds row t to dL/dv_t as it walks.

Firing statistics: a backend may add a counted forward (COUNTED_FWD_SCHEMA: one more output, the spikes
per step) that reuses its backward op; ``register_forward_autograd`` wires it like the plain forward. The packed
forward (PACKED_FWD_SCHEMA: one more output, the spikes at 1 bit each) is wired the same way.

Second derivatives: the backward op's own autograd formula raises (``refuse_double_backward``), so a
double backward through the fused neuron fails loudly instead of returning zeros; first-order gradients
taken with ``create_graph=True`` are unaffected.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..reference.spike_pack import packed_numel
from ..surrogate import Sigmoid, Triangle
from ._double_backward import refuse_double_backward
from .layout import match_layout
from .leaky_settings import BWD_ARGS, BWD_OUTPUTS, FWD_ARGS, FWD_OUTPUTS, bind, names, op_schema, positional
from .registry import (
    OpEntry,
    Samples,
    randn,
    registered_op,
)

# Generated from the one definition of the arguments (ops/leaky_settings.py); csrc/registration.cpp holds a
# verbatim copy, compared by python_tests/ops/test_neuron_settings.py.
FWD_SCHEMA = op_schema(FWD_ARGS, FWD_OUTPUTS)
BWD_SCHEMA = op_schema(BWD_ARGS, BWD_OUTPUTS)

# A forward that also counts spikes (Triton only): FWD_SCHEMA's arguments and outputs plus ``spike_counts``,
# int64 [T], the number of spikes at each step. The extra output is an integer, hence non-differentiable, so
# the same setup_context / backward serve it (they only look at the first four outputs).
COUNTED_FWD_SCHEMA = FWD_SCHEMA.removesuffix(")") + ", Tensor spike_counts)"

# A forward that also returns its spikes packed (Triton only; docs/spike_pack.md "Packed by the neuron"):
# ``spikes_packed``, uint8 [ceil(x.numel() / 8)] in spike_pack's layout, non-differentiable like the counts.
PACKED_FWD_SCHEMA = FWD_SCHEMA.removesuffix(")") + ", Tensor spikes_packed)"

# Positions of the ops' arguments, used by setup_context / backward.
_FWD_ARGS = list(names(FWD_ARGS))
_BWD_ARGS = names(BWD_ARGS)


# Steps per checkpoint chunk that every backend uses by default (each backend module exposes its own
# DEFAULT_CHUNK, initialised from this, which tests override to cover several chunks with short sequences).
CHECKPOINT_CHUNK = 8


def num_checkpoints(T: int, chunk: int) -> int:
    """Rows of the checkpoint tensor: one per chunk after the first."""
    return max((T + chunk - 1) // chunk - 1, 0)


def neurons_per_step(x: torch.Tensor) -> int:
    return math.prod(x.shape[1:])


def time_major_dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself if the kernels can walk its memory as [T, N] (contiguous, or each step channels-last
    as convolutions under torch.compile produce), else a contiguous copy. Elementwise work does not care
    about the order of the N neurons; a neuron's channel is ``(offset // x.stride(2)) % C`` in both."""
    if x.is_contiguous():
        return x
    step_formats = {5: torch.channels_last, 6: torch.channels_last_3d}
    fmt = step_formats.get(x.dim())
    if fmt is not None and x.stride(0) == neurons_per_step(x) and x[0].is_contiguous(memory_format=fmt):
        return x
    return x.contiguous()


def channel_stride(x: torch.Tensor, channels: int) -> int:
    """Memory distance between neighbouring channels (dim 2); 1 for per-tensor coefficients."""
    return x.stride(2) if channels > 1 else 1


def fake_fwd(*args, **kwargs):
    a = bind(FWD_ARGS, args, kwargs)
    return new_fwd_outputs(a.x, a.training, a.store_final_state, a.chunk, a.store_v_seq)


def fake_fwd_counted(*args, **kwargs):
    return (*fake_fwd(*args, **kwargs), new_spike_counts(bind(FWD_ARGS, args, kwargs).x))


def fake_fwd_packed(*args, **kwargs):
    return (*fake_fwd(*args, **kwargs), new_spikes_packed(bind(FWD_ARGS, args, kwargs).x))


def new_spikes_packed(x: torch.Tensor) -> torch.Tensor:
    """The packed forward's extra output: the spikes at 1 bit each, uint8 [ceil(x.numel() / 8)]."""
    return x.new_empty((packed_numel(x.numel()),), dtype=torch.uint8)


def new_spike_counts(x: torch.Tensor) -> torch.Tensor:
    """The counted forward's extra output: spikes per step, int64 [T]."""
    return x.new_empty((x.shape[0],), dtype=torch.int64)


def new_fwd_outputs(x: torch.Tensor, training: bool, store_final_state: bool, chunk: int, store_v_seq: bool = False):
    """Uninitialised (spikes, v_final, checkpoints, v_seq); states follow the memory layout of x[0], v_seq
    that of x."""
    spikes = torch.empty_like(x)
    v_final = (
        torch.empty_like(x[0], dtype=torch.float32) if store_final_state else x.new_empty((0,), dtype=torch.float32)
    )
    ckpt = x.new_empty(
        (num_checkpoints(x.shape[0], chunk), neurons_per_step(x)) if training else (0,), dtype=torch.float32
    )
    v_seq = torch.empty_like(x, dtype=torch.float32) if store_v_seq else x.new_empty((0,), dtype=torch.float32)
    return spikes, v_final, ckpt, v_seq


def fake_bwd(*args, **kwargs):
    a = bind(BWD_ARGS, args, kwargs)
    return new_bwd_outputs(a.x, a.need_grad_v_init, a.need_grad_decay, a.need_grad_gain, a.need_grad_bias)


def new_bwd_outputs(x: torch.Tensor, need_grad_v_init: bool, *need_partials: bool):
    """Uninitialised (grad_x, grad_v_init, *per-neuron partial sums)."""
    n = neurons_per_step(x)

    def absent() -> torch.Tensor:
        # a fresh 0-element tensor per output: outputs of an op must not alias each other
        return x.new_empty((0,), dtype=torch.float32)

    grad_x = torch.empty_like(x)
    grad_v_init = torch.empty_like(x[0], dtype=torch.float32) if need_grad_v_init else absent()
    partials = [x.new_empty((n,), dtype=torch.float32) if need else absent() for need in need_partials]
    return grad_x, grad_v_init, *partials


def reduce_partial(partial: torch.Tensor, coefficient: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-neuron partial sums [N] -> the coefficient's gradient [C'] (deterministic torch sums)."""
    c = coefficient.numel()
    if c == 1:
        return partial.sum().reshape(1)
    return partial.view(-1, c, channel_stride(x, c)).sum(dim=(0, 2))


def _setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    args = dict(zip(_FWD_ARGS, inputs, strict=True))
    if not args["training"]:
        ctx.inference_only = True
        return
    ctx.inference_only = False
    ctx.save_for_backward(args["x"], args["v_init"], output[2], args["decay_t"], args["gain_t"], args["bias_t"])
    ctx.scalars = {k: args[k] for k in _FWD_ARGS if k not in ("x", "v_init", "decay_t", "gain_t", "bias_t", "training")}


def make_backward(bwd_op: Any):
    """The autograd backward of a forward op, calling its backend's ``bwd_op``."""

    # *_extra: the gradients of outputs past v_seq (spike counts): integers, never differentiated
    def backward(
        ctx: Any,
        grad_spikes: torch.Tensor,
        grad_v_final: torch.Tensor | None,
        _grad_ckpt: Any,
        grad_v_seq: torch.Tensor | None,
        *_extra: Any,
    ):
        if ctx.inference_only:
            raise RuntimeError(
                "snnkernels: this leaky-neuron forward ran with training=False (no checkpoints saved), so it "
                "cannot be differentiated; call it with gradients enabled"
            )
        x, v_init, ckpt, decay_t, gain_t, bias_t = ctx.saved_tensors
        grad_v_final, grad_v_seq = _present(grad_v_final), _present(grad_v_seq)
        needs = ctx.needs_input_grad
        need_v_init = v_init is not None and needs[1]
        need = [t is not None and needs[i] for i, t in ((2, decay_t), (3, gain_t), (4, bias_t))]
        values = {  # the backward op's arguments by name, passed in BWD_ARGS' order
            **ctx.scalars,
            "grad_spikes": match_layout(grad_spikes, x),
            "grad_v_final": None if grad_v_final is None else match_layout(grad_v_final, x[0]),
            "x": x,
            "v_init": v_init,
            "checkpoints": ckpt,
            "decay_t": decay_t,
            "gain_t": gain_t,
            "bias_t": bias_t,
            "need_grad_v_init": need_v_init,
            **{f"need_grad_{name}": n for name, n in zip(("decay", "gain", "bias"), need, strict=True)},
            "grad_v_seq": None if grad_v_seq is None else match_layout(grad_v_seq.float(), x),
        }
        grad_x, grad_v_init, g_decay, g_gain, g_bias = bwd_op(*(values[name] for name in _BWD_ARGS))
        coefficient_grads = [
            reduce_partial(g, t, x) if n else None
            for g, t, n in zip((g_decay, g_gain, g_bias), (decay_t, gain_t, bias_t), need, strict=True)
        ]
        return (
            grad_x,
            grad_v_init.to(v_init.dtype) if need_v_init else None,
            *coefficient_grads,
        ) + (None,) * (len(_FWD_ARGS) - 5)

    return backward


def _present(grad: torch.Tensor | None) -> torch.Tensor | None:
    """A gradient of an optional output, or None where the output was absent (0 elements) or got none."""
    return None if grad is None or grad.numel() == 0 else grad


def define_leaky_ops(backend: str, fwd_impl: Any, bwd_impl: Any, dispatch_keys: tuple[str, ...]) -> tuple[Any, Any]:
    """Define ``snnkernels::leaky_{fwd,bwd}_<backend>`` with Python implementations, fakes and autograd."""
    fwd_name, bwd_name = f"snnkernels::leaky_fwd_{backend}", f"snnkernels::leaky_bwd_{backend}"
    torch.library.define(fwd_name, FWD_SCHEMA)
    torch.library.define(bwd_name, BWD_SCHEMA)
    for key in dispatch_keys:
        torch.library.impl(fwd_name, key)(fwd_impl)
        torch.library.impl(bwd_name, key)(bwd_impl)
    return register_leaky_autograd(fwd_name, bwd_name)


def register_leaky_autograd(fwd_name: str, bwd_name: str) -> tuple[Any, Any]:
    """Fakes and autograd for an op pair whose schemas are FWD_SCHEMA / BWD_SCHEMA (also C++-defined ones); the
    backward op refuses to be differentiated again."""
    torch.library.register_fake(bwd_name)(fake_bwd)
    refuse_double_backward(bwd_name)
    bwd_op = _op(bwd_name)
    return register_forward_autograd(fwd_name, bwd_op, fake_fwd), bwd_op


def register_forward_autograd(fwd_name: str, bwd_op: Any, fake: Any) -> Any:
    """Fake and autograd of a forward op with FWD_SCHEMA's arguments whose outputs start with FWD_SCHEMA's
    three (any further outputs must be non-differentiable), differentiated by ``bwd_op`` (BWD_SCHEMA)."""
    torch.library.register_fake(fwd_name)(fake)
    torch.library.register_autograd(fwd_name, make_backward(bwd_op), setup_context=_setup_context)
    return _op(fwd_name)


def _op(qualified_name: str) -> Any:
    namespace, name = qualified_name.split("::")
    return getattr(getattr(torch.ops, namespace), name).default


# The op registry's entries (ops/registry.py): tiny valid inputs for opcheck, the Triton kernels launched.


def _settings(hard: bool, strict: bool, detach: bool, surrogate: int, param: float, bias: float = 0.1) -> dict:
    """Scalar settings of the samples, by name (the op's order comes from leaky_settings.positional)."""
    return dict(
        decay=0.5,
        gain=1.0,
        bias=bias,
        v_threshold=1.0,
        v_reset=0.0,
        v_init_value=0.0,
        hard_reset=hard,
        strict=strict,
        detach_reset=detach,
        surrogate_id=surrogate,
        surrogate_param=param,
    )


def _leaky_fwd_samples(dev: str) -> list[tuple]:
    """FWD_SCHEMA (ops/leaky.py): trained and not, per-channel coefficients or scalars; one soft-reset
    sequence that also stores v_seq."""
    out = []
    for training in (True, False):
        for per_channel in (True, False):
            x, v0 = randn(dev, 5, 2, 3, 4, 5, grad=training), randn(dev, 2, 3, 4, 5, grad=training)
            decay_t, gain_t = (
                torch.full((3,), c, device=dev, requires_grad=training) if per_channel else None for c in (0.6, 0.9)
            )
            out.append(
                positional(
                    FWD_ARGS,
                    x=x,
                    v_init=v0,
                    decay_t=decay_t,
                    gain_t=gain_t,
                    bias_t=None,
                    **_settings(True, True, False, Triangle.id, 1.0),
                    training=training,
                    store_final_state=True,
                    chunk=2,
                )
            )
    bias_t = torch.full((3,), 0.2, device=dev, requires_grad=True)
    soft = dict(
        v_init=None, decay_t=None, gain_t=None, bias_t=bias_t, **_settings(False, False, True, Sigmoid.id, 4.0, 0.0)
    )
    x = randn(dev, 4, 2, 3, grad=True)
    out.append(positional(FWD_ARGS, x=x, **soft, training=True, store_final_state=False, chunk=3, store_v_seq=True))
    return out


def _leaky_bwd_samples(backend: str) -> Samples:
    """BWD_SCHEMA, from the same backend's forward: every coefficient gradient, and a soft reset with
    dL/dv_seq and no initial state."""

    def samples(dev: str) -> list[tuple]:
        fwd = registered_op(f"leaky_fwd_{backend}")
        x, v0 = randn(dev, 5, 2, 3, 4, 5), randn(dev, 2, 3, 4, 5)
        decay, gain = torch.full((3,), 0.6, device=dev), torch.full((3,), 0.9, device=dev)
        hard = dict(
            v_init=v0, decay_t=decay, gain_t=gain, bias_t=None, **_settings(True, True, False, Triangle.id, 1.0)
        )
        spikes, v_final, ckpt, _ = fwd(
            *positional(FWD_ARGS, x=x, **hard, training=True, store_final_state=True, chunk=2)
        )
        first = positional(
            BWD_ARGS,
            grad_spikes=torch.randn_like(spikes),
            grad_v_final=torch.randn_like(v_final),
            x=x,
            checkpoints=ckpt,
            **hard,
            chunk=2,
            need_grad_v_init=True,
            need_grad_decay=True,
            need_grad_gain=True,
            need_grad_bias=False,
        )
        x2 = randn(dev, 4, 2, 3)
        soft = dict(
            v_init=None, decay_t=None, gain_t=None, bias_t=None, **_settings(False, False, True, Sigmoid.id, 4.0, 0.0)
        )
        spikes2, _, ckpt2, v_seq = fwd(
            *positional(FWD_ARGS, x=x2, **soft, training=True, store_final_state=False, chunk=3, store_v_seq=True)
        )
        second = positional(
            BWD_ARGS,
            grad_spikes=torch.randn_like(spikes2),
            grad_v_final=None,
            x=x2,
            checkpoints=ckpt2,
            **soft,
            chunk=3,
            need_grad_v_init=False,
            need_grad_decay=False,
            need_grad_gain=False,
            need_grad_bias=False,
            grad_v_seq=torch.randn_like(v_seq),
        )
        return [first, second]

    return samples


def leaky_entries(backend: str, module: str, devices: tuple[str, ...]) -> tuple[OpEntry, ...]:
    """The registry entries (ops/registry.py) of a backend's leaky op pair, shared by its three backends."""
    kernels = backend == "triton"
    return (
        OpEntry(
            f"leaky_fwd_{backend}",
            module,
            backend,
            _leaky_fwd_samples,
            devices,
            ("leaky_fwd_kernel",) if kernels else (),
            autograd=True,
        ),
        OpEntry(
            f"leaky_bwd_{backend}",
            module,
            backend,
            _leaky_bwd_samples(backend),
            devices,
            ("leaky_bwd_kernel",) if kernels else (),
            autograd=True,
        ),
    )
