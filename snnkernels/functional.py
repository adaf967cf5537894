"""Public functional API. Stateless: the state goes in as ``v_init`` and comes out when asked.

All functions take SpikingJelly-style multi-step input ``[T, ...]`` (``[T, B, C, ...]`` when a
coefficient is per channel) and return spikes of the same shape and dtype. The membrane state is fp32
(fp64 for fp64 input) whatever the input dtype.
"""
from __future__ import annotations

import torch

from . import _checks
from .backends import HAS_TRITON, resolve_backend
from .neuron_models import Number, lif_coefficients
from .reference.neuron import multistep_leaky_reference, state_dtype
from .surrogate import ATan, Surrogate, coerce_surrogate

from .ops import leaky_cupy, leaky_native
from .ops.leaky import match_layout, time_major_dense

if HAS_TRITON:
    from .ops import leaky_triton

__all__ = ["multistep_leaky", "multistep_lif"]

Output = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def multistep_leaky(
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
    surrogate_function: Surrogate = ATan(),
    backend: str = "auto",
    return_final_state: bool = False,
) -> Output:
    """The general leaky neuron, fused over time.

    For t = 1..T: ``h_t = decay * v_{t-1} + input_gain * x_t + bias``; spike ``s_t = H(h_t - v_threshold)``
    (``>=``, or ``>`` when ``strict_threshold``); reset ``v_t = v_reset`` where it fired (hard reset) or
    ``v_t = h_t - v_threshold * s_t`` (soft reset, ``v_reset=None``). The reset's spike is cut from the
    graph when ``detach_reset``. The backward uses ``surrogate_function``'s derivative for dH.

    Args:
        x_seq (Tensor): input current, [T, ...], fp32 / fp16 / bf16 (fp64 on ``backend="torch"``).
        v_init (Tensor, Optional): initial membrane potential, shape ``x_seq.shape[1:]``. Default: zeros.
        decay (float or Tensor): multiplicative leak; a tensor of shape [C] applies per channel (dim 2)
            and receives a gradient.
        input_gain (float or Tensor): factor on the input, like ``decay``. Default: 1.
        bias (float or Tensor): constant added each step, like ``decay``. Default: 0.
        v_threshold (float): firing threshold. Default: 1.
        v_reset (float, Optional): hard-reset value; ``None`` selects soft reset. Default: 0.
        strict_threshold (bool): fire on ``h > v_threshold`` instead of ``>=``. Default: False.
        detach_reset (bool): no gradient through the reset. Default: False.
        surrogate_function (Surrogate): see ``snnkernels.surrogate``. Default: ``ATan()``.
        backend (str): ``"auto"``, ``"torch"``, ``"triton"``, ``"native"`` or ``"cupy"`` (see
            ``snnkernels.backends``). Default: ``"auto"``.
        return_final_state (bool): also return v_T (fp32). Default: False.

    Returns:
        spikes (Tensor) of x_seq's shape and dtype, and v_T when ``return_final_state``.
    """
    return _leaky(
        x_seq, v_init, decay=decay, input_gain=input_gain, bias=bias, v_threshold=v_threshold, v_reset=v_reset,
        strict_threshold=strict_threshold, detach_reset=detach_reset, surrogate_function=surrogate_function,
        backend=backend, return_final_state=return_final_state, v_init_value=0.0,
    )


def multistep_lif(
    x_seq: torch.Tensor,
    v_init: torch.Tensor | None = None,
    *,
    tau: Number = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = False,
    surrogate_function: Surrogate = ATan(),
    backend: str = "auto",
    return_final_state: bool = False,
) -> Output:
    """SpikingJelly's multi-step LIF neuron (``LIFNode(step_mode='m')``), fused over time.

    ``h_t = v_{t-1} + (x_t - (v_{t-1} - v_reset)) / tau`` (or ``v_{t-1} - (v_{t-1} - v_reset) / tau + x_t``
    without ``decay_input``), then fire and reset as in ``multistep_leaky``. The state starts at
    ``v_reset`` (0 for soft reset, ``v_reset=None``) unless ``v_init`` is given. ``tau`` may be a tensor
    (scalar or per channel [C]) that receives a gradient. See ``multistep_leaky`` for the other arguments.
    """
    tau = _checks.check_coefficient(tau, "tau", _checks.check_sequence(x_seq))
    if not isinstance(tau, torch.Tensor) and tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
    decay, gain, bias = lif_coefficients(tau, decay_input, v_reset)
    return _leaky(
        x_seq, v_init, decay=decay, input_gain=gain, bias=bias, v_threshold=v_threshold, v_reset=v_reset,
        strict_threshold=False, detach_reset=detach_reset, surrogate_function=surrogate_function,
        backend=backend, return_final_state=return_final_state,
        v_init_value=0.0 if v_reset is None else v_reset,
    )


def _leaky(x_seq, v_init, *, decay, input_gain, bias, v_threshold, v_reset, strict_threshold, detach_reset,
           surrogate_function, backend, return_final_state, v_init_value) -> Output:
    x_seq = _checks.check_sequence(x_seq)
    v_init = _checks.check_state(v_init, x_seq)
    coefficients = [_checks.check_coefficient(c, n, x_seq) for c, n in
                    ((decay, "decay"), (input_gain, "input_gain"), (bias, "bias"))]
    v_threshold = _checks.check_scalar(v_threshold, "v_threshold")
    v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
    surrogate_function = coerce_surrogate(surrogate_function)

    backend = resolve_backend(backend, x_seq)
    if backend == "torch":
        decay, input_gain, bias = coefficients
        return multistep_leaky_reference(
            x_seq, v_init, decay=decay, input_gain=input_gain, bias=bias, v_threshold=v_threshold,
            v_reset=v_reset, strict_threshold=strict_threshold, detach_reset=detach_reset,
            surrogate_function=surrogate_function, v_init_value=v_init_value, return_final_state=return_final_state,
        )

    x = time_major_dense(x_seq)
    if v_init is not None:
        v_init = match_layout(v_init.to(state_dtype(x.dtype)), x[0])
    scalars, tensors = _split_coefficients(coefficients)
    training = torch.is_grad_enabled() and (
        x.requires_grad or (v_init is not None and v_init.requires_grad) or any(
            t is not None and t.requires_grad for t in tensors)
    )
    forward_op, chunk = _fused_forward(backend)
    spikes, v_final, _ = forward_op(
        x, v_init, *tensors, *scalars, v_threshold, 0.0 if v_reset is None else v_reset, v_init_value,
        v_reset is not None, strict_threshold, detach_reset, surrogate_function.id, surrogate_function.param,
        training, return_final_state, chunk,
    )
    return (spikes, v_final) if return_final_state else spikes


def _fused_forward(backend: str):
    """(forward op, checkpoint chunk) of a fused backend; all share one schema (ops/leaky.py)."""
    if backend == "triton":
        return leaky_triton.leaky_fwd_triton, leaky_triton.DEFAULT_CHUNK
    if backend == "native":
        return leaky_native.forward_op(), leaky_native.DEFAULT_CHUNK
    return leaky_cupy.forward_op(), leaky_cupy.DEFAULT_CHUNK


def _split_coefficients(coefficients: list[Number]) -> tuple[list[float], list[torch.Tensor | None]]:
    """Floats stay kernel arguments; tensors become fp32 [C'] (C' = 1 or C, all tensors alike) that carry
    their gradient back through these torch ops."""
    tensors = [c.to(torch.float32).reshape(-1) if isinstance(c, torch.Tensor) else None for c in coefficients]
    width = max([1] + [t.numel() for t in tensors if t is not None])
    tensors = [None if t is None else (t.expand(width) if t.numel() != width else t).contiguous() for t in tensors]
    scalars = [0.0 if isinstance(c, torch.Tensor) else c for c in coefficients]
    return scalars, tensors
