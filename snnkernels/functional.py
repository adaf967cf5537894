"""Public functional API. Stateless: the state goes in as ``v_init`` and comes out when asked.

All functions take SpikingJelly-style multi-step input ``[T, ...]`` (``[T, B, C, ...]`` when a
coefficient is per channel) and return spikes of the same shape and dtype. The membrane state is fp32
(fp64 for fp64 input) whatever the input dtype.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .backends import (
    HAS_TRITON,
    BackendUnavailableError,
    check_backend_name,
    native_packing_problem,
    resolve_backend,
    resolve_triton_op_backend,
)
from .neuron_models import Number, lif_leaky_settings
from .ops import bn_lif_native, leaky_cupy, leaky_native
from .ops import spike_pack as spike_pack_ops
from .ops.layout import match_layout
from .ops.leaky import time_major_dense
from .ops.leaky_settings import FWD_ARGS, positional
from .reference.bn_lif import bn_lif_reference
from .reference.dta import (
    TNAParams,
    dta_product_reference,
    dta_reference,
    tna_fused_reference,
    tna_reference,
    txa_reference,
)
from .reference.leaky import multistep_leaky_reference, state_dtype
from .reference.ma_snn import (
    check_attention_weights,
    check_dims,
    multi_dimensional_attention_reference,
    tcsa_lif_paper_reference,
)
from .reference.spiking_attention import (
    AttentionLIF,
    check_heads_input,
    qk_channel_attention_reference,
    qk_token_attention_reference,
    spike_driven_self_attention_reference,
    spiking_self_attention_reference,
)
from .reference.staa import (
    LOOP_KERNELS,
    GCParams,
    STAAParams,
    check_option,
    global_context_reference,
    staa_lif_reference,
)
from .reference.tcja import check_tcja_arguments, tcja_gate_reference, tcja_reference
from .surrogate import ATan, Rectangle, Sigmoid, Surrogate, by_id, coerce_surrogate

if HAS_TRITON:
    from .ops import (
        bn_lif_triton,
        dta_leaky_triton,
        gated_leaky_triton,
        global_context_triton,
        leaky_triton,
        ma_snn,
        pooled_attention,
        spiking_attention_triton,
        staa_step_triton,
        tcsa_step_triton,
        tna_triton,
    )

__all__ = [
    "multistep_leaky",
    "multistep_lif",
    "gated_leaky",
    "tcja",
    "tcja_gate",
    "tcja_gate_from_counts",
    "txa",
    "dta_product",
    "tna",
    "dta",
    "dta_on_neuron_fused",
    "multi_dimensional_attention",
    "multi_dimensional_attention_gated_leaky",
    "tcsa_lif_paper",
    "global_context",
    "staa_lif",
    "spiking_self_attention",
    "spike_driven_self_attention",
    "qk_token_attention",
    "qk_channel_attention",
    "bn_lif",
    "resolved_backend",
    "spike_pack",
    "spike_unpack",
    "spike_conv",
    "spike_linear",
]

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
    # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
    surrogate_function: Surrogate = ATan(),  # noqa: B008
    backend: str = "auto",
    return_final_state: bool = False,
    return_v_seq: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
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
        return_v_seq (bool): also return the membrane sequence v_1 .. v_T (the post-reset states, [T, ...] in
            the state dtype and x_seq's layout; differentiable). Default: False.

    Returns:
        spikes (Tensor) of x_seq's shape and dtype; then v_T when ``return_final_state``; then v_seq when
        ``return_v_seq`` (a tuple whenever more than the spikes are returned).
    """
    return leaky_neuron(
        x_seq,
        v_init,
        decay=decay,
        input_gain=input_gain,
        bias=bias,
        v_threshold=v_threshold,
        v_reset=v_reset,
        strict_threshold=strict_threshold,
        detach_reset=detach_reset,
        surrogate_function=surrogate_function,
        backend=backend,
        return_final_state=return_final_state,
        v_init_value=0.0,
        return_v_seq=return_v_seq,
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
    surrogate_function: Surrogate = ATan(),  # noqa: B008
    backend: str = "auto",
    return_final_state: bool = False,
    return_v_seq: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """SpikingJelly's multi-step LIF neuron (``LIFNode(step_mode='m')``), fused over time.

    ``h_t = v_{t-1} + (x_t - (v_{t-1} - v_reset)) / tau`` (or ``v_{t-1} - (v_{t-1} - v_reset) / tau + x_t``
    without ``decay_input``), then fire and reset as in ``multistep_leaky``. The state starts at
    ``v_reset`` (0 for soft reset, ``v_reset=None``) unless ``v_init`` is given. ``tau`` may be a tensor
    (scalar or per channel [C]) that receives a gradient. See ``multistep_leaky`` for the other arguments.
    """
    tau = _checks.check_coefficient(tau, "tau", _checks.check_sequence(x_seq))
    if not isinstance(tau, torch.Tensor) and tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    # a tensor tau is checked too (one host sync; skipped while torch.compile traces, where it would break
    # the graph): tau <= 0 gives decay = 1 - 1/tau >= 1 or infinite coefficients
    if isinstance(tau, torch.Tensor) and not torch.compiler.is_compiling() and not bool((tau.detach() > 0).all()):
        raise ValueError(f"tau must be positive, got {tau.detach().cpu().tolist()}")
    v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
    return leaky_neuron(
        x_seq,
        v_init,
        **lif_leaky_settings(tau, decay_input, v_reset),
        v_threshold=v_threshold,
        detach_reset=detach_reset,
        surrogate_function=surrogate_function,
        backend=backend,
        return_final_state=return_final_state,
        return_v_seq=return_v_seq,
    )


def leaky_neuron(
    x_seq,
    v_init,
    *,
    decay,
    input_gain,
    bias,
    v_threshold,
    v_reset,
    strict_threshold,
    detach_reset,
    surrogate_function,
    backend,
    return_final_state,
    v_init_value,
    count_spikes: bool = False,
    return_v_seq: bool = False,
    return_packed: bool = False,
) -> torch.Tensor | tuple:
    """The leaky neuron on a resolved backend: spikes, then v_T if ``return_final_state``, then v_seq if
    ``return_v_seq`` (the spikes alone when neither). With ``count_spikes`` it returns ``(output, spike_counts)``,
    ``spike_counts`` the spikes per step (int64 [T], no gradient): on "triton" counted inside the forward
    kernel (``leaky_fwd_counted_triton``), on the other backends by a second pass over the spikes. With
    ``return_packed`` the spikes at 1 bit each (``spike_pack``'s layout, uint8, no gradient) come last: on
    "triton" written by the forward kernel as it fires (``leaky_fwd_packed_triton``; docs/spike_pack.md "Packed
    by the neuron"), elsewhere, or together with ``count_spikes``, packed in a pass of their own. Either way
    ``output`` is exactly what the call without them returns."""
    x_seq = _checks.check_sequence(x_seq)
    v_init = _checks.check_state(v_init, x_seq)
    coefficients = [
        _checks.check_coefficient(c, n, x_seq)
        for c, n in ((decay, "decay"), (input_gain, "input_gain"), (bias, "bias"))
    ]
    v_threshold = _checks.check_scalar(v_threshold, "v_threshold")
    v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
    surrogate_function = coerce_surrogate(surrogate_function)

    backend = resolve_backend(backend, x_seq)
    if backend == "torch":
        decay, input_gain, bias = coefficients
        out = multistep_leaky_reference(
            x_seq,
            v_init,
            decay=decay,
            input_gain=input_gain,
            bias=bias,
            v_threshold=v_threshold,
            v_reset=v_reset,
            strict_threshold=strict_threshold,
            detach_reset=detach_reset,
            surrogate_function=surrogate_function,
            v_init_value=v_init_value,
            return_final_state=return_final_state,
            return_v_seq=return_v_seq,
        )
        return _with_extras(out, count_spikes, return_packed, "torch")

    x = time_major_dense(x_seq)
    if v_init is not None:
        v_init = match_layout(v_init.to(state_dtype(x.dtype)), x[0])
    (decay, gain, bias), (decay_t, gain_t, bias_t) = _split_coefficients(coefficients)
    training = torch.is_grad_enabled() and (
        x.requires_grad
        or (v_init is not None and v_init.requires_grad)
        or any(t is not None and t.requires_grad for t in (decay_t, gain_t, bias_t))
    )
    counted_in_kernel = count_spikes and backend == "triton"
    packed_in_kernel = return_packed and backend == "triton" and not count_spikes
    forward_op, chunk = _fused_forward(backend, counted_in_kernel, packed_in_kernel)
    # by name: the op's argument order is the definition's (ops/leaky_settings.py), not written here
    spikes, v_final, _, v_seq, *extra = forward_op(
        *positional(
            FWD_ARGS,
            x=x,
            v_init=v_init,
            decay_t=decay_t,
            gain_t=gain_t,
            bias_t=bias_t,
            decay=decay,
            gain=gain,
            bias=bias,
            v_threshold=v_threshold,
            v_reset=0.0 if v_reset is None else v_reset,
            v_init_value=v_init_value,
            hard_reset=v_reset is not None,
            strict=strict_threshold,
            detach_reset=detach_reset,
            surrogate_id=surrogate_function.id,
            surrogate_param=surrogate_function.param,
            training=training,
            store_final_state=return_final_state,
            chunk=chunk,
            store_v_seq=return_v_seq,
        )
    )
    out = (spikes,) + ((v_final,) if return_final_state else ()) + ((v_seq,) if return_v_seq else ())
    out = out if len(out) > 1 else spikes
    if counted_in_kernel:
        return (out, extra[0], *_packed_after(spikes, return_packed, backend))
    if packed_in_kernel:
        return out, extra[0]
    return _with_extras(out, count_spikes, return_packed, backend)


def _with_extras(out: torch.Tensor | tuple, count: bool, packed: bool, backend: str) -> torch.Tensor | tuple:
    """``out``, then the spikes per step if ``count``, then the packed spikes if ``packed``, all formed from the
    spikes (``out``'s first tensor) in passes of their own, for the kernels that do not form them as they fire
    (exact, since every spike is 0 or 1)."""
    spikes = out[0] if isinstance(out, tuple) else out
    if not (count or packed):
        return out
    counts = (spikes.detach().reshape(spikes.shape[0], -1).sum(1, dtype=torch.int64),) if count else ()
    return (out, *counts, *_packed_after(spikes, packed, backend))


def _packed_after(spikes: torch.Tensor, packed: bool, backend: str) -> tuple[torch.Tensor, ...]:
    """(the spikes packed in a pass of their own,) if ``packed``: on the eager reference for ``backend="torch"``,
    else on the packing kernels of the spikes' device (``spike_pack``'s "auto")."""
    if not packed:
        return ()
    where = "torch" if backend == "torch" else _packing_backend("auto", spikes, "leaky_neuron")
    return (spike_pack_ops.pack(spikes.detach(), False, where),)


def _fused_forward(backend: str, counted: bool = False, packed: bool = False):
    """(forward op, checkpoint chunk) of a fused backend; all share one schema (ops/leaky.py). ``counted`` /
    ``packed``: Triton's forward that also returns the spikes per step (COUNTED_FWD_SCHEMA) / packed
    (PACKED_FWD_SCHEMA)."""
    if backend == "triton":
        op = leaky_triton.leaky_fwd_triton
        if counted or packed:
            op = leaky_triton.leaky_fwd_counted_triton if counted else leaky_triton.leaky_fwd_packed_triton
        return op, leaky_triton.DEFAULT_CHUNK
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


def resolved_backend(backend: str, x: torch.Tensor, *, owner: str | None = None) -> str:
    """The backend that an op on ``x`` runs for this ``backend`` argument, by the rule the entries here
    apply: a leaky neuron's (``owner=None``: "torch", "triton", "native" or "cupy"), or, with ``owner`` naming
    an op or module that has Triton kernels only, "torch" or "triton" (errors name ``owner``). Raises as the
    op would when an explicit backend cannot run. For callers that decide on it without running an op:
    whether an attention and a neuron can fuse (``nn.fused``), what a network reports
    (``models.resolved_backends``)."""
    if owner is None:
        return resolve_backend(backend, x)
    if owner == "bn_lif":
        return _bn_lif_backend(backend, x)
    return resolve_triton_op_backend(backend, x, owner)


BN_LIF_BACKENDS = ("auto", "torch", "triton", "native")


def _bn_lif_backend(backend: str, x: torch.Tensor) -> str:
    """bn_lif's backend on x: the leaky neuron's rule ("auto": Triton on CUDA, else the native neuron where it
    is built, else "torch"), without CuPy, which has no bn_lif (docs/bn_lif.md "Native backend")."""
    check_backend_name(backend, "bn_lif", BN_LIF_BACKENDS)  # names what it runs on for an explicit "cupy"
    resolved = resolve_backend(backend, x)
    # SNNKERNELS_BACKEND=cupy replacing "auto" is meant for the neurons: bn_lif takes "auto" without it
    return resolve_triton_op_backend("auto", x, "bn_lif") if resolved == "cupy" else resolved


# ---------------------------------------------------------------------------------------------------------
# The gated neuron: a leaky neuron whose input is an attention's gated output, the gate applied as the
# neuron loads its input (docs/tcja_dta.md, docs/ma_snn.md). ``neuron`` is the scalar settings tuple of a
# leaky neuron, ``nn.fused.neuron_settings(module)``.

_NEURON_SETTINGS_LENGTH = 11  # see ops.gated_leaky_triton.NeuronSettings


def _check_neuron_settings(neuron: object) -> tuple:
    if not isinstance(neuron, (tuple, list)) or len(neuron) != _NEURON_SETTINGS_LENGTH:
        raise ValueError(
            "neuron must be the 11 scalar settings (decay, gain, bias, v_threshold, v_reset, "
            "v_init_value, hard_reset, strict, detach_reset, surrogate_id, surrogate_param) of "
            f"nn.fused.neuron_settings, got {neuron!r}"
        )
    return tuple(neuron)


def _leaky_of_settings(y: torch.Tensor, neuron: tuple, count_spikes: bool) -> Output:
    """The eager leaky neuron with scalar ``neuron`` settings on y [T, B, C, H, W] from its settings' rest
    value; with ``count_spikes`` also the spikes per (t, b, c), int32 [T, B, C]."""
    decay, gain, bias, v_threshold, v_reset, v_init_value, hard, strict, detach, sg_id, sg_param = neuron
    spikes = multistep_leaky_reference(
        y,
        decay=decay,
        input_gain=gain,
        bias=bias,
        v_threshold=v_threshold,
        v_reset=v_reset if hard else None,
        strict_threshold=strict,
        detach_reset=detach,
        surrogate_function=by_id(sg_id, sg_param),
        v_init_value=v_init_value,
    )
    if not count_spikes:
        return spikes
    return spikes, spikes.detach().sum(dim=(3, 4), dtype=torch.int32)


def gated_leaky(
    x: torch.Tensor,
    scale: torch.Tensor,
    spatial: torch.Tensor | None = None,
    *,
    relu: bool = False,
    neuron: tuple,
    count_spikes: bool = False,
    backend: str = "auto",
) -> Output:
    """Spikes of the leaky neuron driven by ``y = pre(x) * scale[t, b, c] (* spatial[b, h * W + w])``, pre =
    ReLU (``relu``) or the identity, y rounded to x's dtype as an attention would store it; from rest.

    Args:
        x (Tensor): [T, B, C, H, W].
        scale (Tensor): [T, B, C], the attention's gate per (t, b, c) (fp32 from its reduction sweeps).
        spatial (Tensor, Optional): [B, H * W], a gate per pixel (MA-SNN's SA). Default: None.
        relu (bool): ReLU before the gates (MA-SNN's attention). Default: False.
        neuron (tuple): the neuron's scalar settings, ``nn.fused.neuron_settings(module)``.
        count_spikes (bool): also return the spikes per (t, b, c), int32 [T, B, C]. Default: False.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'`` (``ops.gated_leaky_triton``: y never stored).
            Default: ``'auto'``.
    """
    x = _check_attention_input(x)
    neuron = _check_neuron_settings(neuron)
    T, B, C, H, W = x.shape
    if not isinstance(scale, torch.Tensor) or tuple(scale.shape) != (T, B, C):
        raise ValueError(
            f"scale must have shape [T, B, C] = {[T, B, C]}, got "
            f"{list(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__}"
        )
    if spatial is not None and (not isinstance(spatial, torch.Tensor) or tuple(spatial.shape) != (B, H * W)):
        raise ValueError(
            f"spatial must have shape [B, H * W] = {[B, H * W]}, got "
            f"{list(spatial.shape) if isinstance(spatial, torch.Tensor) else type(spatial).__name__}"
        )
    if resolve_triton_op_backend(backend, x, "gated_leaky") == "torch":
        y = (x.float().clamp_min(0) if relu else x.float()) * scale.float()[..., None, None]
        if spatial is not None:
            y = y * spatial.float().view(1, B, 1, H, W)
        return _leaky_of_settings(y.to(x.dtype), neuron, count_spikes)
    return gated_leaky_triton.gated_leaky(x, scale, spatial, relu=relu, neuron=neuron, count_spikes=count_spikes)


# ---------------------------------------------------------------------------------------------------------
# Pooled attentions (TCJA-SNN, DTA-SNN) on [T, B, C, H, W]. Math: snnkernels.reference.tcja / .dta.
# "triton" runs two fused sweeps each way (snnkernels.ops.pooled_attention); "auto" picks it on CUDA.


def _check_attention_input(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    x = _checks.check_sequence(x, name)
    if x.dim() != 5:
        raise ValueError(f"{name} must have shape [T, B, C, H, W], got {list(x.shape)}")
    return x


def tcja(
    x: torch.Tensor,
    weight_t: torch.Tensor | None,
    weight_c: torch.Tensor | None,
    *,
    mode: str = "both",
    backend: str = "auto",
) -> torch.Tensor:
    """TCJA ``Y = X * sig(TLA(Z) * CLA(Z))``, Z = mean over H, W (or one branch: ``mode='tla'`` / ``'cla'``).

    Args:
        x (Tensor): [T, B, C, H, W].
        weight_t (Tensor, Optional): TLA weight [C, C, K_T], slides along time ('same' padding, the extra
            zero of an even kernel on the right). Unused with ``mode='cla'``.
        weight_c (Tensor, Optional): CLA weight [T, T, K_C], slides along channels. Unused with ``'tla'``.
        mode (str): ``'both'``, ``'tla'`` or ``'cla'``. Default: ``'both'``.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.
    """
    x = _check_attention_input(x)
    check_tcja_arguments(x, weight_t, weight_c, None, None, mode)
    if resolve_triton_op_backend(backend, x, "tcja") == "torch":
        return tcja_reference(x, weight_t, weight_c, mode=mode)
    return pooled_attention.tcja_fused(
        x, weight_t if mode != "cla" else None, weight_c if mode != "tla" else None, mode
    )


def tcja_gate(
    x: torch.Tensor,
    weight_t: torch.Tensor | None,
    weight_c: torch.Tensor | None,
    *,
    mode: str = "both",
    backend: str = "auto",
) -> torch.Tensor:
    """TCJA's gate ``F = sig(TLA(Z) * CLA(Z))`` [T, B, C] without applying it (arguments as ``tcja``).

    F > 0 is constant over (h, w), so the multiply commutes with the pooling that usually follows TCJA:
    ``max_pool(X) * F[..., None, None]`` equals ``max_pool(TCJA(X))`` exactly (a positive factor keeps the
    maximum's position, and the rounding of one product is the same either way), and for an average
    pool up to the rounding of the mean. Applying F after a 2x2 pool moves a quarter of the elements,
    so TCJA costs one reduction sweep over X instead of two full passes. The gate is fp32 on the
    Triton path (the mean, the tiny stage), in x's dtype on the torch path.
    """
    x = _check_attention_input(x)
    check_tcja_arguments(x, weight_t, weight_c, None, None, mode)
    if resolve_triton_op_backend(backend, x, "tcja_gate") == "torch":
        return tcja_gate_reference(x, weight_t, weight_c, mode=mode)
    return pooled_attention.tcja_gate_fused(x, weight_t, weight_c, mode)


def tcja_gate_from_counts(
    spikes: torch.Tensor,
    counts: torch.Tensor,
    weight_t: torch.Tensor | None,
    weight_c: torch.Tensor | None,
    *,
    mode: str = "both",
    backend: str = "auto",
) -> torch.Tensor:
    """``tcja_gate`` of binary ``spikes`` [T, B, C, H, W] given their counts per (t, b, c) (int [T, B, C], as
    the neuron kernel counts them with ``count_spikes``): ``"triton"`` takes TCJA's mean from the counts and
    makes no pass over the spikes (equal bit for bit to the mean's sweep); ``"torch"`` is ``tcja_gate``'s
    reference on the spikes. Differentiable in the spikes and the weights."""
    spikes = _check_attention_input(spikes, "spikes")
    check_tcja_arguments(spikes, weight_t, weight_c, None, None, mode)
    if not isinstance(counts, torch.Tensor) or counts.shape != spikes.shape[:3]:
        raise ValueError(
            f"counts must have shape [T, B, C] = {list(spikes.shape[:3])}, got "
            f"{list(counts.shape) if isinstance(counts, torch.Tensor) else type(counts).__name__}"
        )
    if resolve_triton_op_backend(backend, spikes, "tcja_gate_from_counts") == "torch":
        return tcja_gate_reference(spikes, weight_t, weight_c, mode=mode)
    return pooled_attention.tcja_gate_from_counts(spikes, counts, weight_t, weight_c, mode)


def _check_txa_weights(x: torch.Tensor, conv_t_weight: torch.Tensor, conv_c_weight: torch.Tensor) -> None:
    T, C = x.shape[0], x.shape[2]
    for w, shape, name in ((conv_t_weight, (T, T, 3), "conv_t_weight"), (conv_c_weight, (C, C, 6), "conv_c_weight")):
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
            got = list(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise ValueError(f"{name} must have shape {list(shape)} for x of shape {list(x.shape)}, got {got}")


def txa(
    x: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float = 1.0,
    scale_c: torch.Tensor | float = 1.0,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """DTA's T-XA ``(X + scale_t sig(Qt)) * (X + scale_c sig(Qc))`` (see ``reference.dta.txa_reference``).

    Args:
        x (Tensor): [T, B, C, H, W].
        conv_t_weight (Tensor): [T, T, 3], slides along channels. conv_c_weight (Tensor): [C, C, 6], along time.
        scale_t, scale_c (Tensor | float): 0-d learnable scales. Default: 1.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.
    """
    x = _check_attention_input(x)
    _check_txa_weights(x, conv_t_weight, conv_c_weight)
    if resolve_triton_op_backend(backend, x, "txa") == "torch":
        return txa_reference(x, conv_t_weight, conv_c_weight, scale_t, scale_c)
    return pooled_attention.txa_fused(x, conv_t_weight, conv_c_weight, scale_t, scale_c)


def dta_product(
    x: torch.Tensor,
    na: torch.Tensor,
    spikes: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float = 1.0,
    scale_c: torch.Tensor | float = 1.0,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """DTA's output ``sig(NA * T-XA(X)) * S`` given T-NA's output ``na``; the T-XA product is formed inside
    the fused sweep and never stored.

    Args:
        x (Tensor): [T, B, C, H, W], the conv+BN output. na (Tensor), spikes (Tensor): same shape.
        conv_t_weight, conv_c_weight, scale_t, scale_c: the T-XA parameters (see ``txa``).
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.
    """
    x = _check_attention_input(x)
    for t, name in ((na, "na"), (spikes, "spikes")):
        if not isinstance(t, torch.Tensor) or t.shape != x.shape:
            got = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must have the shape of x {list(x.shape)}, got {got}")
    _check_txa_weights(x, conv_t_weight, conv_c_weight)
    if resolve_triton_op_backend(backend, x, "dta_product") == "torch":
        return dta_product_reference(x, na, spikes, conv_t_weight, conv_c_weight, scale_t, scale_c)
    return pooled_attention.dta_product_fused(x, na, spikes, conv_t_weight, conv_c_weight, scale_t, scale_c)


def _fuse_time_channels(x: torch.Tensor) -> torch.Tensor:
    """[T, B, C, H, W] -> T-NA's [B, T * C, H, W] (t-major): a view when x is stored [B, T, ...]."""
    T, B, C, H, W = x.shape
    return x.transpose(0, 1).reshape(B, T * C, H, W)


def _check_tna_input(x: torch.Tensor, params: TNAParams) -> torch.Tensor:
    x = _check_attention_input(x)
    D = params.encoding_weight.shape[0]
    if x.shape[0] * x.shape[2] != D:
        raise ValueError(
            f"T-NA weights are for D = T * C = {D} channels, x {list(x.shape)} has T * C = {x.shape[0] * x.shape[2]}"
        )
    return x


def _check_fused_tna_input(x2: torch.Tensor, params: TNAParams) -> torch.Tensor:
    if not x2.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (fp32, fp16, bf16 or fp64), got {x2.dtype}")
    D = params.encoding_weight.shape[0]
    if x2.shape[1] != D:
        raise ValueError(
            f"T-NA weights are for D = T * C = {D} channels, the fused [B, T * C, H, W] input "
            f"{list(x2.shape)} has {x2.shape[1]}"
        )
    return x2


def tna(
    x: torch.Tensor,
    params: TNAParams,
    *,
    dilation: int = 3,
    attn_shortcut: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """DTA's T-NA on x [T, B, C, H, W] (see ``reference.dta.tna_reference``), or on the official fused input
    [B, T * C, H, W] (t-major channels, ``reference.dta.tna_fused_reference``), returned in its shape.
    ``"triton"`` keeps the dense convolutions on cuDNN / cuBLAS and fuses the elementwise work around them
    (``ops/tna_triton.py``)."""
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        x2 = _check_fused_tna_input(x, params)
        if resolve_triton_op_backend(backend, x2, "tna") == "torch":
            return tna_fused_reference(x2, params, dilation=dilation, attn_shortcut=attn_shortcut)
        return tna_triton.tna_fused(x2, params, dilation=dilation, attn_shortcut=attn_shortcut)
    x = _check_tna_input(x, params)
    if resolve_triton_op_backend(backend, x, "tna") == "torch":
        return tna_reference(x, params, dilation=dilation, attn_shortcut=attn_shortcut)
    T, B, C, H, W = x.shape
    na = tna_triton.tna_fused(_fuse_time_channels(x), params, dilation=dilation, attn_shortcut=attn_shortcut)
    return na.view(B, T, C, H, W).transpose(0, 1)


def dta(
    x: torch.Tensor,
    spikes: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
    tna_params: TNAParams,
    *,
    dilation: int = 3,
    attn_shortcut: bool = True,
    backend: str = "auto",
) -> torch.Tensor:
    """DTA ``sig(T-NA(X) * T-XA(X)) * S`` on [T, B, C, H, W] (see ``reference.dta.dta_reference``).

    ``"triton"``: T-NA as in ``tna`` up to its decoding conv; the decoding bias, the residual, T-XA, the
    product, the sigmoid and the multiply by S all happen in one output sweep (``dta_product``), so neither
    T-NA's nor T-XA's output is ever stored.
    """
    x = _check_tna_input(x, tna_params)
    if not isinstance(spikes, torch.Tensor) or spikes.shape != x.shape:
        got = list(spikes.shape) if isinstance(spikes, torch.Tensor) else type(spikes).__name__
        raise ValueError(f"spikes must have the shape of x {list(x.shape)}, got {got}")
    _check_txa_weights(x, conv_t_weight, conv_c_weight)
    if resolve_triton_op_backend(backend, x, "dta") == "torch":
        return dta_reference(
            x,
            spikes,
            conv_t_weight,
            conv_c_weight,
            scale_t,
            scale_c,
            tna_params,
            dilation=dilation,
            attn_shortcut=attn_shortcut,
        )
    na, bias = _tna_for_output_sweep(x, tna_params, dilation, attn_shortcut)
    return pooled_attention.dta_product_fused(x, na, spikes, conv_t_weight, conv_c_weight, scale_t, scale_c, bias)


def _tna_for_output_sweep(
    x: torch.Tensor, tna_params: TNAParams, dilation: int, attn_shortcut: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """T-NA of x [T, B, C, H, W] up to its bias-free decoding conv, in x's [T, B, ...] indexing, and the
    decoding bias that DTA's output sweep adds together with the residual X (None without the residual:
    then the bias is added here)."""
    T, B, C, H, W = x.shape
    decoded = tna_triton.tna_decoded(_fuse_time_channels(x), tna_params, dilation=dilation)
    na = decoded.view(B, T, C, H, W).transpose(0, 1)
    bias = tna_params.decoding_bias
    if not attn_shortcut:
        na, bias = na + bias.view(T, 1, C, 1, 1), None
    return na, bias


def dta_on_neuron_fused(
    x: torch.Tensor,
    conv_t_weight: torch.Tensor,
    conv_c_weight: torch.Tensor,
    scale_t: torch.Tensor | float,
    scale_c: torch.Tensor | float,
    tna_params: TNAParams,
    *,
    neuron: tuple,
    dilation: int = 3,
    attn_shortcut: bool = True,
    count_spikes: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """DTA-SNN's encoding block ``dta(x, LIF(x))`` on Triton, with the neuron's time loop and DTA's output
    sweep as one kernel each way (``ops.dta_leaky_triton``): the spikes are never stored.

    ``neuron`` is the scalar settings tuple of a leaky neuron, ``nn.fused.neuron_settings(module)``; the
    other arguments as ``dta``. With ``count_spikes`` also the neuron's spikes per (t, b, c), int32
    [T, B, C]. Modules: ``nn.fused.neuron_dta``, which falls back to the unfused pair when a kernel cannot
    run it.
    """
    x = _check_tna_input(x, tna_params)
    _check_txa_weights(x, conv_t_weight, conv_c_weight)
    if resolve_triton_op_backend("triton", x, "dta_on_neuron_fused") != "triton":  # raises with the reason
        raise RuntimeError(
            "dta_on_neuron_fused has no torch path (SNNKERNELS_BACKEND asks for 'torch'): "
            "compute dta(x, neuron(x)) instead"
        )
    na, bias = _tna_for_output_sweep(x, tna_params, dilation, attn_shortcut)
    return dta_leaky_triton.dta_leaky(
        x, na, conv_t_weight, conv_c_weight, scale_t, scale_c, bias, neuron=neuron, count_spikes=count_spikes
    )


# ---------------------------------------------------------------------------------------------------------
# MA-SNN's released multi-dimensional attention (docs/ma_snn.md "Released attention").
# Math: snnkernels.reference.ma_snn.


def multi_dimensional_attention(
    x: torch.Tensor,
    dims: str = "TCS",
    ta: tuple[torch.Tensor, torch.Tensor] | None = None,
    ca: tuple[torch.Tensor, torch.Tensor] | None = None,
    sa: torch.Tensor | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """MA-SNN's attention ``relu(g_s g_c g_t X)`` with the gates in ``dims`` (see
    ``reference.ma_snn.multi_dimensional_attention_reference`` for the arguments).

    ``"triton"`` (x [T, B, C, H, W] only): three sweeps forward (per-(t, b, c) sum / max, per-pixel sum / max
    over (t, c), then the gates and the ReLU applied) and three backward; the MLPs and the SA conv run in
    torch on the pooled statistics. ``"auto"`` picks it on CUDA for 5-D input.
    """
    x = _checks.check_sequence(x)
    dims = check_dims(dims)
    if backend == "auto" and x.dim() != 5:
        backend = "torch"  # the FC layers' [T, B, L] time attention has no fused path
    if resolve_triton_op_backend(backend, x, "multi_dimensional_attention") == "torch":
        return multi_dimensional_attention_reference(x, dims, ta, ca, sa)
    if x.dim() != 5:
        raise ValueError(
            f"backend='triton' takes x of shape [T, B, C, H, W], got {list(x.shape)}; the FC "
            "layers' [T, B, L] time attention runs on backend='torch'"
        )
    return ma_snn.ma_attention_fused(x, dims, *check_attention_weights(x, dims, ta, ca, sa))


def multi_dimensional_attention_gated_leaky(
    x: torch.Tensor,
    dims: str = "TCS",
    ta: tuple[torch.Tensor, torch.Tensor] | None = None,
    ca: tuple[torch.Tensor, torch.Tensor] | None = None,
    sa: torch.Tensor | None = None,
    *,
    neuron: tuple,
    count_spikes: bool = False,
    backend: str = "auto",
) -> Output:
    """Spikes of the leaky neuron (scalar ``neuron`` settings, see ``gated_leaky``) on MA-SNN's attention
    ``multi_dimensional_attention(x, dims, ta, ca, sa)``, x [T, B, C, H, W]; with ``count_spikes`` also the
    spikes per (t, b, c), int32 [T, B, C]. ``"triton"``: the gates' sweeps, then the gates applied inside the
    neuron's kernel, so the attention's output is never formed (``ops.ma_snn.ma_gated_neuron_fused``);
    ``"torch"``: the eager attention, then the eager neuron."""
    x = _check_attention_input(x)
    dims = check_dims(dims)
    neuron = _check_neuron_settings(neuron)
    weights = check_attention_weights(x, dims, ta, ca, sa)
    if resolve_triton_op_backend(backend, x, "multi_dimensional_attention_gated_leaky") == "torch":
        return _leaky_of_settings(multi_dimensional_attention_reference(x, dims, ta, ca, sa), neuron, count_spikes)
    return ma_snn.ma_gated_neuron_fused(x, dims, *weights, neuron=neuron, count_spikes=count_spikes)


def tcsa_lif_paper(
    x: torch.Tensor,
    dims: str = "TCS",
    ta: tuple[torch.Tensor, torch.Tensor] | None = None,
    ca: tuple[torch.Tensor, torch.Tensor] | None = None,
    sa: torch.Tensor | None = None,
    *,
    beta: float = 0.3,
    u_th: float = 0.3,
    v_reset: float = 0.0,
    surrogate_function: Surrogate = Rectangle(0.5),  # noqa: B008
    detach_reset: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """The PAPER's TCSA-LIF neuron layer (MA-SNN Eq. 14, ``reference.ma_snn.tcsa_lif_paper_reference``) on x
    [T, B, C, H, W] with the gates in ``dims`` (weights as ``multi_dimensional_attention``); spikes in x's
    dtype. ``"triton"``: every gate's statistics on the fused sweeps (TA's once, CA's and SA's per step), each
    step's gating, fire and reset one kernel each way (``ops.tcsa_step_triton``)."""
    x = _check_attention_input(x)
    dims = check_dims(dims)
    weights = check_attention_weights(x, dims, ta, ca, sa)
    neuron = dict(
        beta=beta, u_th=u_th, v_reset=v_reset, surrogate_function=surrogate_function, detach_reset=detach_reset
    )
    if resolve_triton_op_backend(backend, x, "tcsa_lif_paper") == "torch":
        return tcsa_lif_paper_reference(x, *weights, **neuron)
    return tcsa_step_triton.tcsa_lif_paper_fused(x, dims, *weights, **neuron)


# ---------------------------------------------------------------------------------------------------------
# STAA-SNN (docs/staa.md). Math: snnkernels.reference.staa.


def global_context(
    x: torch.Tensor,
    params: GCParams,
    *,
    fusion: str = "add",
    layer_norm: bool = True,
    ln_eps: float = 1e-5,
    backend: str = "auto",
) -> torch.Tensor:
    """GCNet's global context block on each [C, H, W] frame of x [..., C, H, W] (at least 4-D), as STAA uses
    it (``reference.staa.global_context_reference``: ``x + v`` or ``x * sig(v)``). ``"triton"``: the
    attention-weighted pooling of every frame as one fused sweep each way, the tiny transform in torch
    (``ops.global_context_triton``)."""
    x = _checks.check_sequence(x, "x", min_dim=4)
    if not isinstance(params, GCParams):
        raise TypeError(f"params must be a GCParams, got {type(params).__name__}")
    if resolve_triton_op_backend(backend, x, "global_context") == "torch":
        return global_context_reference(x, params, fusion=fusion, layer_norm=layer_norm, ln_eps=ln_eps)
    return global_context_triton.global_context_fused(x, params, fusion=fusion, layer_norm=layer_norm, ln_eps=ln_eps)


def staa_lif(
    x: torch.Tensor,
    params: STAAParams,
    *,
    drop_mask: torch.Tensor | None = None,
    alpha: float = 2.0,
    sa_gate: str = "sigmoid",
    gc_fusion: str = "add",
    gc_layer_norm: bool = True,
    ln_eps: float = 1e-5,
    coefficient_map: str = "raw",
    tsrd_scope: str = "step_attention",
    tsrd_granularity: str = "step",
    v_threshold: float = 1.0,
    v_reset: float = 0.0,
    detach_reset: bool = False,
    surrogate_function: Surrogate = Rectangle(1.0),  # noqa: B008
    loop_kernel: str = "steps",
    backend: str = "auto",
) -> torch.Tensor:
    """STAA-LIF (``reference.staa.staa_lif_reference``, whose arguments these are) on x [T, B, C, H, W] from
    rest, with an explicit TSRD ``drop_mask`` (bool [T] or [T, B], True = dropped) or none; spikes in x's dtype.

    ``"triton"``: PE in torch, the GC block's pooling on its fused sweep, and the time loop on per-step
    kernels (``loop_kernel="steps"``, ``ops.staa_step_triton``) or as one persistent kernel each way
    (``"persistent"``, ``ops.staa_loop_triton``); with per-pixel coefficients (M, N of shape [C, H, W]) the
    loop stays eager. ``loop_kernel`` has no effect on ``"torch"``.
    """
    x = _check_attention_input(x)
    if not isinstance(params, STAAParams):
        raise TypeError(f"params must be an STAAParams, got {type(params).__name__}")
    check_option(loop_kernel, LOOP_KERNELS, "loop_kernel")
    options = dict(
        alpha=alpha,
        sa_gate=sa_gate,
        gc_fusion=gc_fusion,
        gc_layer_norm=gc_layer_norm,
        ln_eps=ln_eps,
        coefficient_map=coefficient_map,
        tsrd_scope=tsrd_scope,
        tsrd_granularity=tsrd_granularity,
        v_threshold=v_threshold,
        v_reset=v_reset,
        detach_reset=detach_reset,
        surrogate_function=surrogate_function,
    )
    if resolve_triton_op_backend(backend, x, "staa_lif") == "torch":
        return staa_lif_reference(x, params, drop_mask=drop_mask, **options)
    if params.m.dim() < 3 and params.n.dim() < 3:
        return staa_step_triton.staa_lif_fused(x, params, drop_mask=drop_mask, loop_kernel=loop_kernel, **options)
    # per-pixel M, N: PE + GC fused, the loop eager
    features = staa_step_triton.staa_features_fused(
        x.to(state_dtype(x.dtype)), params, gc_fusion=gc_fusion, gc_layer_norm=gc_layer_norm, ln_eps=ln_eps
    )
    return staa_lif_reference(x, params, drop_mask=drop_mask, features=features, **options)


# ---------------------------------------------------------------------------------------------------------
# Spiking transformers' attention cores on [T, B, heads, N, d] (any strides). Math: docs/spiking_attention.md,
# snnkernels.reference.spiking_attention. "triton" runs the fused kernels (snnkernels.ops.spiking_attention_triton).

_SIGMOID4 = Sigmoid(4.0)


def _attention_lif(
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate_function: Surrogate,
) -> AttentionLIF:
    if not isinstance(tau, torch.Tensor) and not float(tau) > 0:
        raise ValueError(f"tau must be positive, got {tau!r}")
    v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
    return AttentionLIF(
        tau if isinstance(tau, torch.Tensor) else float(tau),
        float(v_threshold),
        v_reset,
        bool(decay_input),
        bool(detach_reset),
        coerce_surrogate(surrogate_function),
    )


def _attention_backend(backend: str, q: torch.Tensor, lif: AttentionLIF, owner: str) -> str:
    """ "torch" or "triton"; a tensor tau (learnable, PLIF) runs on the reference, which differentiates it."""
    if isinstance(lif.tau, torch.Tensor):
        if backend == "triton":
            raise ValueError(f"{owner}: a tensor tau runs on backend='torch' (or 'auto') only")
        resolve_triton_op_backend(backend, q, owner)  # checks the name
        return "torch"
    return resolve_triton_op_backend(backend, q, owner)


def spiking_self_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float = 0.125,
    tau: float | torch.Tensor = 2.0,
    v_threshold: float = 0.5,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate_function: Surrogate = _SIGMOID4,
    backend: str = "auto",
    check: bool = True,
) -> torch.Tensor:
    """Spiking self-attention (SSA): ``LIF(scale * q (k^T v))`` per (t, b, head), the LIF over t on each element.

    Both official orderings (``(q k^T) v`` and ``q (k^T v)``) give the same fp32 result on binary input
    (docs/spiking_attention.md "SSA"); the fused kernel stores no attention membrane and keeps q, k, v for the
    backward at 1 bit each (docs/spiking_attention.md "Fused SSA: what is stored, what is recomputed"), so on
    the fused backend they must be spikes (0 / 1) when a gradient is needed.

    Args:
        q (Tensor): [T, B, heads, N, d], any strides (``x.view(T, B, heads, d, N).transpose(-1, -2)`` for [T, B, C, N]).
        k (Tensor): as q.
        v (Tensor): as q.
        scale (float): factor on the product. Default: 0.125.
        tau (float or Tensor): the attention LIF's time constant; a tensor (learnable) runs on the reference.
            Default: 2.0.
        v_threshold (float): its threshold. Default: 0.5.
        v_reset (float, Optional): hard-reset value, None for soft reset. Default: 0.0.
        decay_input (bool): SpikingJelly's decay_input. Default: True.
        detach_reset (bool): detach the spike in the reset. Default: True.
        surrogate_function (Surrogate): surrogate derivative. Default: ``Sigmoid(4.0)``.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.
        check (bool): on the fused backend, raise a ValueError naming the first element of q, k or v that is
            not 0 / 1 (one device synchronisation per input); False skips it for inputs known to be spikes
            (the transformers' own LIF outputs), where a non-binary input would get wrong gradients.
            Default: True.

    Returns:
        Spikes [T, B, heads, N, d] in q's dtype and layout.
    """
    check_heads_input(q, k, v)
    lif = _attention_lif(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate_function)
    if _attention_backend(backend, q, lif, "spiking_self_attention") == "torch":
        return spiking_self_attention_reference(q, k, v, scale=float(scale), lif=lif)
    return spiking_attention_triton.spiking_self_attention_fused(q, k, v, float(scale), lif, check)


def spike_driven_self_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    tau: float | torch.Tensor = 2.0,
    v_threshold: float = 0.5,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate_function: Surrogate = _SIGMOID4,
    backend: str = "auto",
) -> torch.Tensor:
    """Spike-driven self-attention (SDSA, SDT v1): ``q * LIF(sum over tokens of k * v)``, per channel.

    Args:
        q (Tensor): [T, B, heads, N, d], any strides.
        k (Tensor): as q.
        v (Tensor): as q.
        tau (float or Tensor): the attention LIF's time constant; a tensor (learnable) runs on the reference.
            Default: 2.0.
        v_threshold (float): its threshold. Default: 0.5.
        v_reset (float, Optional): hard-reset value, None for soft reset. Default: 0.0.
        decay_input (bool): SpikingJelly's decay_input. Default: True.
        detach_reset (bool): detach the spike in the reset. Default: True.
        surrogate_function (Surrogate): surrogate derivative. Default: ``Sigmoid(4.0)``.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.

    Returns:
        [T, B, heads, N, d] in q's dtype and layout.
    """
    check_heads_input(q, k, v)
    lif = _attention_lif(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate_function)
    if _attention_backend(backend, q, lif, "spike_driven_self_attention") == "torch":
        return spike_driven_self_attention_reference(q, k, v, lif=lif)
    return spiking_attention_triton.gate_attention_fused(q, k, v, lif, token=False)


def qk_token_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    tau: float | torch.Tensor = 2.0,
    v_threshold: float = 0.5,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate_function: Surrogate = _SIGMOID4,
    backend: str = "auto",
) -> torch.Tensor:
    """QKFormer's Q-K token attention: ``LIF(sum over the head's channels of q) * k``.

    Args:
        q (Tensor): [T, B, heads, N, d], any strides (QKFormer's [T, B, heads, d, N] is ``q.transpose(-1, -2)``).
        k (Tensor): as q.
        tau (float or Tensor): the attention LIF's time constant; a tensor (learnable) runs on the reference.
            Default: 2.0.
        v_threshold (float): its threshold. Default: 0.5.
        v_reset (float, Optional): hard-reset value, None for soft reset. Default: 0.0.
        decay_input (bool): SpikingJelly's decay_input. Default: True.
        detach_reset (bool): detach the spike in the reset. Default: True.
        surrogate_function (Surrogate): surrogate derivative. Default: ``Sigmoid(4.0)``.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.

    Returns:
        [T, B, heads, N, d] in k's dtype and layout.
    """
    check_heads_input(q, k, names="qk")
    lif = _attention_lif(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate_function)
    if _attention_backend(backend, q, lif, "qk_token_attention") == "torch":
        return qk_token_attention_reference(q, k, lif=lif)
    return spiking_attention_triton.gate_attention_fused(k, q, None, lif, token=True)


def qk_channel_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    tau: float | torch.Tensor = 2.0,
    v_threshold: float = 0.5,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate_function: Surrogate = _SIGMOID4,
    backend: str = "auto",
) -> torch.Tensor:
    """QKFormer's Q-K channel attention: ``LIF(sum over tokens of q) * k`` (arguments as ``qk_token_attention``).

    Args:
        q (Tensor): [T, B, heads, N, d], any strides.
        k (Tensor): as q.
        tau (float or Tensor): the attention LIF's time constant; a tensor (learnable) runs on the reference.
            Default: 2.0.
        v_threshold (float): its threshold. Default: 0.5.
        v_reset (float, Optional): hard-reset value, None for soft reset. Default: 0.0.
        decay_input (bool): SpikingJelly's decay_input. Default: True.
        detach_reset (bool): detach the spike in the reset. Default: True.
        surrogate_function (Surrogate): surrogate derivative. Default: ``Sigmoid(4.0)``.
        backend (str): ``'auto'``, ``'torch'`` or ``'triton'``. Default: ``'auto'``.

    Returns:
        [T, B, heads, N, d] in k's dtype and layout.
    """
    check_heads_input(q, k, names="qk")
    lif = _attention_lif(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate_function)
    if _attention_backend(backend, q, lif, "qk_channel_attention") == "torch":
        return qk_channel_attention_reference(q, k, lif=lif)
    return spiking_attention_triton.gate_attention_fused(k, q, None, lif, token=False)


# ---------------------------------------------------------------------------------------------------------
# 1-bit spikes (docs/spike_pack.md)

PACKING_BACKENDS = ("auto", "torch", "triton", "native")


def _packing_backend(backend: str, like: torch.Tensor, owner: str) -> str:
    """ "native" (the CPU kernels, also what "auto" takes on the CPU), "triton" or "torch" for a tensor
    like ``like`` (its device and float dtype); "reference" (the eager packing) for "auto" on a CPU where the
    native extension is not built."""
    check_backend_name(backend, owner, PACKING_BACKENDS)
    if backend == "native" or (backend == "auto" and like.device.type == "cpu"):
        if like.device.type != "cpu":
            raise BackendUnavailableError(
                f"{owner}: backend='native' packs spikes on the CPU only, got a tensor on {like.device}; "
                "use backend='triton' or 'auto'"
            )
        problem = native_packing_problem()
        if problem is None:
            return "native"
        if backend == "native":
            raise BackendUnavailableError(f"{owner}: backend='native' cannot run: {problem}")
        # "auto" on a CPU without the extension: packed on the eager reference, the same bytes ("torch" would make
        # the spike layers plain ones, which keep their input unpacked)
        return "reference"
    if like.dtype == torch.float64:  # the packing kernels compare in the input's dtype: fp64 is exact too
        like = like.new_empty(0, dtype=torch.float32)
    return resolve_triton_op_backend(backend, like, owner)


def spike_pack(x: torch.Tensor, *, check: bool = True, backend: str = "auto") -> torch.Tensor:
    """The spikes of ``x`` at 1 bit each: uint8 [ceil(x.numel() / 8)], element i of the flattened contiguous
    order in bit i % 8 of byte i // 8 (docs/spike_pack.md "Layout").

    Args:
        x (Tensor): spikes, any float dtype and shape, only 0s and 1s.
        check (bool, Optional): raise a ValueError naming the first element that is neither 0 nor 1 (checked
            in the same pass; on CUDA it reads one flag back). Without it, a bit is ``x != 0``. Default: True
        backend (str, Optional): "auto" (the CPU kernels on the CPU, Triton on CUDA), "native", "triton" or
            "torch" (the eager reference). Default: "auto"
    """
    if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.dtype == torch.bool):
        raise TypeError(f"spike_pack takes a float (or bool) tensor of spikes, got {getattr(x, 'dtype', type(x))}")
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    return spike_pack_ops.pack(
        x, check, _packing_backend(backend, x if x.is_floating_point() else x.float(), "spike_pack")
    )


def spike_unpack(
    packed: torch.Tensor,
    shape: list[int] | tuple[int, ...] | torch.Size,
    dtype: torch.dtype = torch.float32,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """The 0 / 1 tensor of ``shape`` and ``dtype`` that ``spike_pack`` packed (exact inverse on spikes).

    Args:
        packed (Tensor): uint8, at least ceil(prod(shape) / 8) bytes.
        shape (Sequence[int]): the packed tensor's shape.
        dtype (torch.dtype, Optional): the result's dtype. Default: torch.float32
        backend (str, Optional): as ``spike_pack``. Default: "auto"
    """
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise TypeError(f"spike_unpack takes the uint8 tensor of spike_pack, got {getattr(packed, 'dtype', packed)}")
    like = packed.new_empty((), dtype=dtype)
    return spike_pack_ops.unpack(packed, list(shape), dtype, _packing_backend(backend, like, "spike_unpack"))


def _autocast(x: torch.Tensor, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """x and the parameters as autocast would hand them to a conv / linear (all in its dtype), else as they are."""
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return [x, *tensors]
    dtype = torch.get_autocast_dtype(device)
    return [None if t is None else t.to(dtype) if t.is_floating_point() else t for t in (x, *tensors)]


def _same_padding(
    x: torch.Tensor, weight: torch.Tensor, stride: list[int], dilation: list[int]
) -> tuple[torch.Tensor, list[int]]:
    """padding="same" as aten's ``_convolution_mode`` applies it: symmetric padding, and the odd extra
    element padded onto the input's high end first."""
    dims = weight.dim() - 2
    if any(s != 1 for s in stride):
        raise ValueError("padding='same' is not supported for strided convolutions")
    left, pad_nd = [], [0] * (2 * dims)
    for i in range(dims):
        total = dilation[i] * (weight.shape[i + 2] - 1)
        left.append(total // 2)
        pad_nd[2 * (dims - 1 - i) + 1] = total - 2 * (total // 2)
    if any(pad_nd):
        x = torch.constant_pad_nd(x, pad_nd, 0.0)
    return x, left


def spike_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | str = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    *,
    check: bool = True,
    backend: str = "auto",
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.conv1d`` / ``conv2d`` / ``conv3d`` (by ``weight.dim()``) of a spike input ``x`` that keeps ``x`` for
    the backward as 1 bit an element; every gradient is bit-identical to the plain conv's
    (docs/spike_pack.md "Exactness").

    Args:
        x (Tensor): [N, C_in, ...] spikes (0s and 1s).
        weight (Tensor): [C_out, C_in / groups, *kernel].
        bias (Tensor, Optional): [C_out]. Default: None
        stride, padding, dilation, groups: as ``F.conv2d`` (padding "valid" / "same" included).
        check (bool, Optional): raise if ``x`` is not binary (``spike_pack``). Default: True
        backend (str, Optional): "torch" is the plain conv (nothing packed); else the packing's backend, as
            ``spike_pack``. Default: "auto"
        packed (Tensor, Optional): ``x``'s spikes already packed (``spike_pack``'s layout), e.g. by the neuron
            that fired them (``leaky_neuron(..., return_packed=True)``): saved as they are, with no pass over
            ``x`` and no check. Ignored where the conv pads ``x`` itself (padding "same" with an odd total).
            Default: None (``x`` is packed here)
    """
    dims = weight.dim() - 2
    if x.dim() != dims + 2:
        raise ValueError(
            f"spike_conv: a {dims}-d conv takes [N, C, ...] input of {dims + 2} dims, got {tuple(x.shape)}"
        )
    stride, dilation = _tuple(stride, dims), _tuple(dilation, dims)
    resolved = _packing_backend(backend, x, "spike_conv")
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[dims - 1]
    if resolved == "torch":
        return conv(x, weight, bias, stride, padding, dilation, groups)
    x, weight, bias = _autocast(x, weight, bias)
    if padding == "valid":
        padding = [0] * dims
    elif padding == "same":
        unpadded = x
        x, padding = _same_padding(x, weight, stride, dilation)
        packed = packed if x is unpadded else None  # the padded x's bits are not those of the copy
    elif isinstance(padding, str):
        raise ValueError(f"spike_conv: padding must be 'valid', 'same' or numbers, got {padding!r}")
    with torch.autocast(x.device.type, enabled=False):
        return spike_pack_ops.SpikeConvFunction.apply(
            x, weight, bias, stride, _tuple(padding, dims), dilation, groups, check, resolved, packed
        )


def _tuple(v: int | tuple[int, ...] | list[int], dims: int) -> list[int]:
    return [int(v)] * dims if isinstance(v, int) else [int(i) for i in v]


def spike_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    check: bool = True,
    backend: str = "auto",
    packed: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear`` of a spike input ``x`` that keeps ``x`` for the backward as 1 bit an element; every
    gradient is bit-identical to ``F.linear``'s (docs/spike_pack.md "Exactness").

    Args:
        x (Tensor): [..., in_features] spikes (0s and 1s).
        weight (Tensor): [out_features, in_features].
        bias (Tensor, Optional): [out_features]. Default: None
        check (bool, Optional): raise if ``x`` is not binary. Default: True
        backend (str, Optional): as ``spike_conv``. Default: "auto"
        packed (Tensor, Optional): as ``spike_conv``. Default: None
    """
    resolved = _packing_backend(backend, x, "spike_linear")
    if resolved == "torch":
        return torch.nn.functional.linear(x, weight, bias)
    x, weight, bias = _autocast(x, weight, bias)
    with torch.autocast(x.device.type, enabled=False):
        return spike_pack_ops.SpikeLinearFunction.apply(x, weight, bias, check, resolved, packed)


# BatchNorm + the leaky neuron as one op (docs/bn_lif.md): the zoo's Conv -> BatchNorm -> neuron chains.


def bn_lif(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    decay: Number,
    input_gain: Number = 1.0,
    neuron_bias: Number = 0.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    strict_threshold: bool = False,
    detach_reset: bool = False,
    surrogate_function: Surrogate = ATan(),  # noqa: B008
    v_init_value: float = 0.0,
    backend: str = "auto",
    return_packed: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Spikes of the leaky neuron (``multistep_leaky``, from rest) driven by BatchNorm's output, where BatchNorm
    is ``nn.functional.batch_norm`` over the merged [T * B, C, ...] samples (what ``nn.BatchNorm2d`` /
    ``nn.BatchNorm1d`` compute on the zoo's flattened time-batch axis): statistics per channel over T x B x the
    spatial positions. On ``backend="triton"`` BatchNorm is applied as the neuron loads x, so its output is
    never stored; the backward rebuilds it from x (docs/bn_lif.md). On ``"native"`` it is a transient of each
    pass, not kept either.

    Args:
        x (Tensor): [T, B, C, *spatial] (conv output [T, B, C, H, W], tokens [T, B, C, N], features [T, B, C]).
        running_mean (Tensor, Optional): [C]; updated in place when ``training`` (as ``batch_norm``).
        running_var (Tensor, Optional): [C]; updated in place with the unbiased batch variance.
        weight (Tensor, Optional): BatchNorm's [C] weight. Default: None (1).
        bias (Tensor, Optional): BatchNorm's [C] bias. Default: None (0).
        training (bool): normalise with the batch statistics and update the running ones (``batch_norm``'s
            ``training``); else normalise with the running statistics. Default: False.
        momentum (float): factor of the running statistics' update (``batch_norm``'s). Default: 0.1.
        eps (float): added to the variance. Default: 1e-5.
        decay (float or Tensor): the neuron's multiplicative leak; a 0-d / [1] / [C] tensor may be learnable.
        input_gain (float or Tensor): factor on BatchNorm's output, like ``decay``. Default: 1.
        neuron_bias (float or Tensor): constant added to the charge each step, like ``decay``. Default: 0.
        v_threshold (float): firing threshold. Default: 1.
        v_reset (float, Optional): hard-reset value; ``None`` selects soft reset. Default: 0.
        strict_threshold (bool): fire on ``h > v_threshold``. Default: False.
        detach_reset (bool): no gradient through the reset. Default: False.
        surrogate_function (Surrogate): see ``snnkernels.surrogate``. Default: ``ATan()``.
        v_init_value (float): the state every neuron starts from. Default: 0.
        backend (str): ``'auto'``, ``'torch'`` (the eager ``batch_norm`` + neuron reference), ``'triton'`` or
            ``'native'`` (the C++ neuron, BatchNorm in torch ops; docs/bn_lif.md "Native backend"). Default:
            ``'auto'``.
        return_packed (bool): also return the spikes at 1 bit each (``spike_pack``'s layout, no gradient), for the
            spike layer that takes them (``SpikeConv2d.forward(s, packed)``): on ``"triton"`` written by the
            forward kernel as it fires where a row of x (its spatial positions) has a multiple of 8 values, else
            packed in a pass of their own (docs/spike_pack.md "Packed by the neuron"). Default: False.

    Returns:
        spikes (Tensor) of x's shape and dtype; with ``return_packed``, (spikes, packed).
    """
    x = _checks.check_sequence(x, "x", min_dim=3)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    if not training and running_mean is None:
        raise ValueError("training=False normalises with the running statistics: pass running_mean and running_var")
    T, B, C = x.shape[:3]
    if training and T * B * math.prod(x.shape[3:]) == 1:  # torch's rule (an empty batch passes)
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    coefficients = [
        _checks.check_coefficient(c, n, x)
        for c, n in ((decay, "decay"), (input_gain, "input_gain"), (neuron_bias, "neuron_bias"))
    ]
    v_threshold = _checks.check_scalar(v_threshold, "v_threshold")
    v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
    surrogate_function = coerce_surrogate(surrogate_function)
    resolved = _bn_lif_backend(backend, x)
    # an empty batch: batch_norm's own rule (empty output, running statistics untouched)
    if resolved == "torch" or x.numel() == 0:
        decay, input_gain, neuron_bias = coefficients
        spikes = bn_lif_reference(
            x,
            running_mean,
            running_var,
            weight,
            bias,
            training=training,
            momentum=momentum,
            eps=eps,
            decay=decay,
            input_gain=input_gain,
            neuron_bias=neuron_bias,
            v_threshold=v_threshold,
            v_reset=v_reset,
            strict_threshold=strict_threshold,
            detach_reset=detach_reset,
            surrogate_function=surrogate_function,
            v_init_value=v_init_value,
        )
        return _with_extras(spikes, False, return_packed, "torch")
    neuron = (
        0.0,
        0.0,
        0.0,
        v_threshold,
        0.0 if v_reset is None else v_reset,
        float(v_init_value),
        v_reset is not None,
        bool(strict_threshold),
        bool(detach_reset),
        surrogate_function.id,
        surrogate_function.param,
    )
    fused = bn_lif_triton.bn_lif if resolved == "triton" else bn_lif_native.bn_lif
    packed_in_kernel = return_packed and resolved == "triton"
    out = fused(
        x,
        running_mean,
        running_var,
        weight,
        bias,
        batch_stats=training,
        momentum=momentum,
        eps=eps,
        coefficients=tuple(coefficients),
        neuron=neuron,
        **({"pack": True} if packed_in_kernel else {}),  # the native bn_lif packs no copy
    )
    return out if packed_in_kernel else _with_extras(out, False, return_packed, resolved)
