"""Eager reference of the leaky neuron family: a plain loop over T, autograd does the backward.

This is the ground truth the kernels are tested against and the ``backend="torch"`` path. It follows
the equations in ``snnkernels.neuron_models`` literally, in fp32 (fp64 for fp64 input), in the same
op order as the kernels' charge so that fp32 spikes agree bit for bit. Never edit it to match a kernel.

Non-finite values (docs/neuron.md "Non-finite values"): a leaking neuron (decay != 1) charges an infinite
membrane to NaN, as SpikingJelly's ``v + (x - (v - v_reset)) / tau`` does; IF (decay = 1) keeps +-inf.
"""

from __future__ import annotations

import torch

from ..neuron_models import Number, lif_leaky_settings
from ..surrogate import ATan, Surrogate

__all__ = ["multistep_leaky_reference", "multistep_lif_reference", "state_dtype"]


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The membrane state is fp32 for fp32/fp16/bf16 input and fp64 for fp64 input."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _leak_term(a: Number, dtype: torch.dtype) -> torch.Tensor | bool | None:
    """Where the neuron leaks: True (a float decay != 1 in the state dtype, as the charge uses it), None (exactly 1:
    IF), or a bool tensor shaped like the coefficient (per channel)."""
    if isinstance(a, torch.Tensor):
        return a.detach() != 1.0
    if torch.compiler.is_compiling():
        # torch.compile(dynamic=True) may trace a as a symbol: compare as a 0-d tensor instead of guarding on it
        return torch.full((), a, dtype=dtype) != 1.0
    return True if torch.tensor(a, dtype=dtype).item() != 1.0 else None


def _charge(
    a: Number, v: torch.Tensor, b: Number, x: torch.Tensor, c: Number, leaks: torch.Tensor | bool | None
) -> torch.Tensor:
    """h = a v + b x + c, minus (v - v) where the neuron leaks: v - v is +0 for a finite v and h - 0 is h bit for
    bit, so finite states keep their bits; an infinite v gives NaN. Detached: it adds no gradient term."""
    h = a * v + b * x + c
    if leaks is None:
        return h
    zero_or_nan = v.detach() - v.detach()
    if leaks is not True:
        zero_or_nan = torch.where(leaks, zero_or_nan, 0.0)
    return h - zero_or_nan


def _as_channel_coefficient(value: Number, x_seq: torch.Tensor, dtype: torch.dtype) -> Number:
    """A [C] (or 0-d / [1]) tensor coefficient shaped to broadcast along dim 2 of [T, B, C, ...]."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(dtype)
    if value.numel() == 1:
        return value.reshape(())
    return value.reshape((value.numel(),) + (1,) * (x_seq.dim() - 3))


def multistep_leaky_reference(
    x_seq: torch.Tensor,
    v_init: torch.Tensor | None = None,
    *,
    decay: Number,
    input_gain: Number = 1.0,
    bias: Number = 0.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    strict_threshold: bool = False,
    detach_reset: bool = False,
    # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
    surrogate_function: Surrogate = ATan(),  # noqa: B008
    v_init_value: float = 0.0,
    return_final_state: bool = False,
    return_v_seq: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Leaky neuron over ``x_seq`` of shape [T, ...]; returns spikes (x's dtype) [, final state] [, v_seq: the
    post-reset states v_1 .. v_T stacked, [T, ...] in the state dtype]."""
    dtype = state_dtype(x_seq.dtype)
    x = x_seq.to(dtype)
    a = _as_channel_coefficient(decay, x_seq, dtype)
    b = _as_channel_coefficient(input_gain, x_seq, dtype)
    c = _as_channel_coefficient(bias, x_seq, dtype)
    if v_init is None:
        v = torch.full_like(x[0], v_init_value)
    else:
        v = v_init.to(dtype)
    leaks = _leak_term(a, dtype)
    spikes, states = [], []
    for t in range(x.shape[0]):
        h = _charge(a, v, b, x[t], c, leaks)
        s = surrogate_function.spike(h - v_threshold, strict_threshold)
        s_reset = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - v_threshold * s_reset
        else:
            v = h * (1.0 - s_reset) + v_reset * s_reset
        spikes.append(s)
        if return_v_seq:
            states.append(v)
    out = (torch.stack(spikes).to(x_seq.dtype),)
    if return_final_state:
        out += (v,)
    if return_v_seq:
        out += (torch.stack(states),)
    return out if len(out) > 1 else out[0]


def multistep_lif_reference(
    x_seq: torch.Tensor,
    v_init: torch.Tensor | None = None,
    *,
    tau: Number = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = False,
    surrogate_function: Surrogate = ATan(),  # noqa: B008
    return_final_state: bool = False,
    return_v_seq: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """SpikingJelly's multi-step LIF (see ``lif_leaky_settings``); v starts at v_reset (0 for soft reset)."""
    return multistep_leaky_reference(
        x_seq,
        v_init,
        **lif_leaky_settings(tau, decay_input, v_reset),
        v_threshold=v_threshold,
        detach_reset=detach_reset,
        surrogate_function=surrogate_function,
        return_final_state=return_final_state,
        return_v_seq=return_v_seq,
    )
