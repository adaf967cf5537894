"""An attention and the neuron that follows it, with the attention's gate applied inside the neuron's loop.

TCJA (and TLA / CLA) and MA-SNN's released ``MultiDimensionalAttention`` end in a gate that is constant
over (h, w) or (t, c): ``Y = X * F[t, b, c]`` and ``Y = relu(X) * sc[t, b, c] * g_s[b, p]``. Computing the
gate takes reduction sweeps over X; applying it is elementwise. When the neuron right after the attention
runs on the Triton kernels, the gate is applied as the neuron loads its input (``ops.gated_leaky_triton``),
so Y is neither written nor read back nor kept for the backward: TCJA + LIF costs one reduction sweep plus
the neuron's own pass forward (docs/tcja_dta.md "Gate after pooling, spike counts"),
MA-SNN's TCSA + LIF two sweeps plus the neuron's (docs/ma_snn.md "Gates inside the neuron").

The numbers are the unfused composition's: the gated input is rounded to X's dtype before the charge,
exactly as the attention's output would be stored, so the spikes are the same in every dtype; gradients
agree to rounding (the fused backward keeps dL/dY in fp32 instead of X's dtype).

When the pair cannot be fused (another backend, a neuron with learnable or per-channel coefficients, a
stateful or single-step neuron, the [B, T] layout), ``attention_neuron`` runs ``neuron(attention(x))``, the
same computation unfused; ``fusion_blocker`` says why.

The other order, a neuron whose spikes feed a TCJA and then a pool (the TCJA-SNN nets), is
``neuron_tcja_pool``: the neuron kernel counts its spikes per (t, b, c), which gives TCJA its mean, and the
gate multiplies the pooled spikes. DTA-SNN's encoding block ``DTA(X, LIF(X))`` is ``neuron_dta``: the
neuron's time loop forms DTA's output as it fires, so its spikes never exist as a tensor. The fused calls
run the modules' hooks themselves (observe-only), so ``firing.record`` and other observers see them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .. import functional as SF
from ..surrogate import coerce_surrogate
from .attention import DTA, TCJAFamily
from .attention_inputs import check_t_c, dtype_mismatch, to_tb
from .ma_snn import MultiDimensionalAttention
from .neuron import SpikingNeuron

__all__ = [
    "AttentionNeuron",
    "attention_neuron",
    "neuron_tcja_pool",
    "neuron_dta",
    "fusion_blocker",
    "dta_fusion_blocker",
    "neuron_settings",
    "observe_fusion",
    "notify_fusion",
    "observer_hook",
]

FUSABLE_ATTENTIONS = (TCJAFamily, MultiDimensionalAttention)
# callbacks (attention, partner, x, how) run by every fused call; see observe_fusion
Observer = Callable[[nn.Module, nn.Module, torch.Tensor, str], None]
_OBSERVERS: list[Observer] = []


def notify_fusion(attention: nn.Module, partner: nn.Module, x: torch.Tensor, how: str) -> None:
    """Tell the observers (``observe_fusion``) that a fused call is about to run."""
    for observer in _OBSERVERS:
        observer(attention, partner, x, how)


@contextmanager
def observe_fusion(callback: Observer) -> Iterator[None]:
    """Call ``callback(attention, partner, x, how)`` on every fused call inside the block: ``how`` is
    ``"neuron"`` (the gate applied in the partner neuron's loop, ``attention_neuron``), ``"pool"`` (applied
    after the partner pooling layer, ``models.GatedPoolSequential``), ``"neuron-pool"`` (the partner neuron
    before the attention counts its spikes for the gate, which then follows the pool: ``neuron_tcja_pool``)
    or ``"neuron-dta"`` (DTA formed in the partner neuron's loop from its spikes: ``neuron_dta``).
    Forward hooks of the modules do not fire there, since their forwards do not run."""
    _OBSERVERS.append(callback)
    try:
        yield
    finally:
        _OBSERVERS.remove(callback)


def neuron_settings(neuron: nn.Module) -> tuple:
    """The gated kernel's scalar settings of ``neuron`` (see ``ops.gated_leaky_triton.gated_leaky``);
    ``ValueError`` naming the reason when the neuron is not one the gated kernel computes."""
    if not isinstance(neuron, SpikingNeuron):
        raise ValueError(f"the gated kernel runs snnkernels' leaky neurons, got {type(neuron).__name__}")
    if neuron.step_mode != "m" or neuron.stateful:
        raise ValueError("the gated kernel runs a stateless multi-step neuron (step_mode='m', stateful=False)")
    coefficients = neuron.coefficients()
    if any(isinstance(c, torch.Tensor) for c in coefficients):
        raise ValueError(f"{type(neuron).__name__} has learnable coefficients; the gated kernel takes scalars")
    decay, gain, bias = (float(c) for c in coefficients)
    hard = neuron.v_reset is not None
    sg = coerce_surrogate(neuron.surrogate_function)  # a SpikingJelly surrogate as its current (id, param)
    return (
        decay,
        gain,
        bias,
        neuron.v_threshold,
        neuron.v_reset if hard else 0.0,
        float(neuron.v_init_value),
        hard,
        neuron.strict_threshold,
        neuron.detach_reset,
        sg.id,
        sg.param,
    )


def fusion_blocker(attention: nn.Module, neuron: nn.Module, x: torch.Tensor) -> str | None:
    """Why ``neuron(attention(x))`` cannot run with the gate inside the neuron's kernel, or None if it can."""
    if not isinstance(attention, FUSABLE_ATTENTIONS):
        return f"{type(attention).__name__} has no gated-neuron path (TCJA, TLA, CLA, MultiDimensionalAttention do)"
    if attention._forward_hooks:
        return "the attention has forward hooks, which need its output (the fused path never forms it)"
    return _pair_blocker(attention, neuron, x)


def _pair_blocker(attention: nn.Module, neuron: nn.Module, x: torch.Tensor) -> str | None:
    """What every attention + neuron kernel needs: [T, B, ...] input, a neuron the gated kernels run, and
    both modules resolving to Triton on x."""
    name = type(attention).__name__
    if attention.layout != "TB":
        return f"the attention ({name}) takes the [B, T] layout; the neuron's [T, ...] input needs layout='TB'"
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        return "the input is not [T, B, C, H, W]"
    # the unfused pair applies the modules' own rules (docs/tcja_dta.md "Empty input and dtypes")
    if x.numel() == 0:
        return "the input is empty"
    if dtype_mismatch(attention, x):
        return f"the input is {x.dtype} and the attention's parameters are not (the attention raises)"
    try:
        neuron_settings(neuron)
    except ValueError as reason:
        return str(reason)
    if SF.resolved_backend(attention.backend, x, owner=name) != "triton":
        return f"the attention runs on 'torch' here ({name}, backend={attention.backend!r}, {x.device.type} tensor)"
    if SF.resolved_backend(neuron.backend, x) != "triton":
        return f"the neuron runs on {SF.resolved_backend(neuron.backend, x)!r} here (backend={neuron.backend!r})"
    return None


def _gated_run(attention: nn.Module, x: torch.Tensor, settings: tuple) -> Callable[[bool], object]:
    """The fused call of the pair on x [T, B, C, H, W], as a function of ``count_spikes``: MA-SNN's gates
    and neuron as one autograd op (one pooled-paths sweep adds the neuron's dX share); TCJA's gate by its
    sweep (its backward a broadcast view), then the gated neuron. ``_pair_blocker`` found both modules on
    Triton, hence ``backend="triton"``."""
    owner = type(attention).__name__
    if isinstance(attention, MultiDimensionalAttention):
        x = attention.checked_input(x)
        dims, weights = attention.dims, attention.weights()
        return lambda count: SF.multi_dimensional_attention_gated_leaky(
            x, dims, *weights, neuron=settings, count_spikes=count, backend="triton"
        )
    x = to_tb(owner, x, "TB")
    check_t_c(owner, x, attention.T, attention.channel, "TB")
    gate = SF.tcja_gate(x, *attention.weights(), mode=attention.mode, backend="triton")
    return lambda count: SF.gated_leaky(
        x, gate, None, relu=False, neuron=settings, count_spikes=count, backend="triton"
    )


def attention_neuron(attention: nn.Module, neuron: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``neuron(attention(x))``, with the attention's gate applied inside the neuron's Triton kernel when
    ``fusion_blocker`` finds nothing against it."""
    if fusion_blocker(attention, neuron, x) is not None:
        return neuron(attention(x))
    notify_fusion(attention, neuron, x, "neuron")  # neither module's forward runs: tell resolved_backends
    _call_pre_hooks(attention, x)
    spikes, _ = _gated_neuron_call(neuron, x, _gated_run(attention, x, neuron_settings(neuron)), need_counts=False)
    return spikes


def _gated_neuron_call(
    neuron: nn.Module, x: torch.Tensor, run: Callable[[bool], object], need_counts: bool, out_is_spikes: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``run(count_spikes)`` (a fused kernel call) in place of ``neuron(...)``: its hooks run, its firing
    statistics are recorded, and the spike counts per (t, b, c) come back when asked. ``out_is_spikes``
    False: the call returns something else (DTA's output formed from the spikes), so the neuron's forward
    hooks, observers only there, get None for the spikes."""
    _call_pre_hooks(neuron, x)
    count = need_counts or neuron.record_spike_counts
    out = run(count)
    out, counts = out if count else (out, None)
    if neuron.record_spike_counts:  # firing statistics: counted by the kernel as it fires
        neuron.spike_counts = counts.sum(dim=(1, 2), dtype=torch.int64)
    _call_hooks(neuron, x, out if out_is_spikes else None)
    return out, counts


def neuron_tcja_pool(neuron: nn.Module, attention: nn.Module, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``pool(attention(neuron(x)))`` for a TCJA (or TLA / CLA) on a neuron's spikes followed by a max or
    average pool (the TCJA-SNN placement), when ``fusion_blocker(attention, neuron, x)`` finds nothing
    against the pair: the neuron kernel counts its spikes per (t, b, c) as it fires, which is TCJA's mean
    Z times H * W (docs/tcja_dta.md "Gate after pooling, spike counts"), and the gate multiplies the pooled
    spikes. TCJA then makes no pass over the spikes at all; the result is the unfused path's (exactly, for a max
    pool). Otherwise it runs
    the three modules one after the other."""
    if fusion_blocker(attention, neuron, x) is not None:
        return pool(attention(neuron(x)))
    owner = type(attention).__name__
    check_t_c(owner, to_tb(owner, x, "TB"), attention.T, attention.channel, "TB")
    notify_fusion(attention, neuron, x, "neuron-pool")
    ones = x.new_ones(x.shape[:3], dtype=torch.float32)
    settings = neuron_settings(neuron)
    spikes, counts = _gated_neuron_call(
        neuron,
        x,
        lambda count: SF.gated_leaky(x, ones, None, relu=False, neuron=settings, count_spikes=count, backend="triton"),
        need_counts=True,
    )
    _call_pre_hooks(attention, spikes)
    gate = SF.tcja_gate_from_counts(spikes, counts, *attention.weights(), mode=attention.mode, backend="triton")
    return pool(spikes) * gate[..., None, None].to(spikes.dtype)


def observer_hook(hook: Callable) -> Callable:
    """Mark a forward (pre-)hook as an observer that reads only the module's first input and returns None,
    so ``neuron_dta`` may call it although the fused path never forms the neuron's spikes (a forward hook
    of such an observer gets ``None`` as the output) nor DTA's second input (its pre-hooks get ``(x,)``).
    ``firing.record`` and ``models.resolved_backends`` mark theirs."""
    hook._snnkernels_observer = True  # type: ignore[attr-defined]
    return hook


def _unobserved_hooks(module: nn.Module, pre: bool) -> bool:
    hooks = module._forward_pre_hooks if pre else module._forward_hooks
    return any(not getattr(h, "_snnkernels_observer", False) for h in hooks.values())


def dta_fusion_blocker(neuron: nn.Module, dta: nn.Module, x: torch.Tensor) -> str | None:
    """Why ``dta(x, neuron(x))`` cannot run as one neuron-and-DTA kernel, or None if it can."""
    if not isinstance(dta, DTA):
        return f"{type(dta).__name__} is not a DTA"
    if _unobserved_hooks(dta, pre=True) or _unobserved_hooks(dta, pre=False):
        return "the DTA has forward hooks, which need its spikes input (the fused path never forms it)"
    if _unobserved_hooks(neuron, pre=False):
        return "the neuron has forward hooks, which need its spikes (the fused path never forms them)"
    return _pair_blocker(dta, neuron, x)


def neuron_dta(neuron: nn.Module, dta: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``dta(x, neuron(x))``, DTA-SNN's encoding block, as one kernel each way when ``dta_fusion_blocker``
    finds nothing against it: the neuron's time loop forms DTA's output ``sig(NA * XA) * s`` as it fires
    (T-NA's convolutions and T-XA's gates are computed first, from X alone), so the spikes are never
    written, read back or saved. The numbers are the unfused pair's: the same charges give the same spikes,
    and the gradients agree to rounding (dL/ds stays fp32 instead of the spikes' dtype)."""
    if dta_fusion_blocker(neuron, dta, x) is not None:
        return dta(x, neuron(x))
    notify_fusion(dta, neuron, x, "neuron-dta")
    check_t_c("DTA", x, dta.T, dta.out_channels, "TB", "x_seq")
    xa, na, settings = dta.T_XA, dta.T_NA, neuron_settings(neuron)

    def run(count: bool):
        return SF.dta_on_neuron_fused(
            x,
            xa.conv_t.weight,
            xa.conv_c.weight,
            xa.scale_t,
            xa.scale_c,
            na.params(),
            neuron=settings,
            dilation=na.tca.dilation,
            attn_shortcut=na.attn_shortcut,
            count_spikes=count,
        )

    y, _ = _gated_neuron_call(neuron, x, run, need_counts=False, out_is_spikes=False)
    _call_pre_hooks(dta, x)  # observers (dta_fusion_blocker): they see the call, the computation is done
    _call_hooks(dta, x, y)
    return y


# The fused call runs neither module's forward, so it calls their hooks itself, as Module.__call__ would:
# the neuron's input is x (the gated input never exists) and its output the spikes. A hook may observe
# (firing.record, resolved_backends) but not replace a value: that would change what the kernel computed.
def _call_pre_hooks(module: nn.Module, x: torch.Tensor) -> None:
    for key, hook in module._forward_pre_hooks.items():
        with_kwargs = key in module._forward_pre_hooks_with_kwargs
        result = hook(module, (x,), {}) if with_kwargs else hook(module, (x,))
        if result is not None:
            raise RuntimeError(
                f"a forward pre-hook of {type(module).__name__} returned a value; the fused "
                "attention + neuron path cannot apply it (run the pair unfused)"
            )


def _call_hooks(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> None:
    for key, hook in module._forward_hooks.items():
        with_kwargs = key in module._forward_hooks_with_kwargs
        result = hook(module, (x,), {}, out) if with_kwargs else hook(module, (x,), out)
        if result is not None:
            raise RuntimeError(
                f"a forward hook of {type(module).__name__} returned a value; the fused "
                "attention + neuron path cannot apply it (run the pair unfused)"
            )


class AttentionNeuron(nn.Module):
    """``neuron(attention(x))`` as one module, fused when possible (see ``attention_neuron``).

    The children keep their names (``attention``, ``neuron``), so a state dict is that of
    ``nn.Sequential(OrderedDict(attention=..., neuron=...))``.
    """

    def __init__(self, attention: nn.Module, neuron: nn.Module) -> None:
        super().__init__()
        self.attention = attention
        self.neuron = neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attention_neuron(self.attention, self.neuron, x)

    def fused_for(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` applies the gate inside the neuron's kernel."""
        return fusion_blocker(self.attention, self.neuron, x) is None
