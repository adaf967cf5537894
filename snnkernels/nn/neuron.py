"""Neuron modules: parameter ownership and state handling only; the math is in ``snnkernels.functional``.

``IFNode``, ``LIFNode`` and ``ParametricLIFNode`` take SpikingJelly's keyword names and defaults, so swapping the
import is enough. Differences a user may notice, all deliberate:

- ``step_mode='m'`` is stateless by default: each call starts from the resting state, exactly what a
  SpikingJelly model computes when ``functional.reset_net`` is called between batches. Pass
  ``stateful=True`` to carry the state across calls (streaming, chunked T); ``reset()`` clears it and
  SpikingJelly's ``reset_net`` calls it. ``step_mode='s'`` is stateful, as in SpikingJelly.
- ``store_v_seq=True`` is refused: the fused kernels never materialise the membrane sequence.
- Under activation checkpointing (``torch.utils.checkpoint``) the recompute in the backward pass is side-effect
  free: it neither updates the carried state nor adds spike counts. A stateful neuron that still carries the
  state of the forward being recomputed raises instead of silently recomputing from the wrong state (the
  forward replaced it); stateless multi-step neurons, the default, checkpoint without restrictions.

Firing statistics: set ``record_spike_counts = True`` on a neuron (or use ``snnkernels.firing.record``) and
each forward leaves ``spike_counts``, the spikes per step (int64 [T], [1] in step mode ``'s'``, detached).
On the Triton backend the forward kernel counts them as it fires (no second pass over the spikes); on the
others they are summed from the spikes afterwards. The spikes themselves are the same either way.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..functional import _leaky
from ..neuron_models import ATT_RES_LIF, MA_SNN_LIF, TET_LIF, NeuronPreset, Number, rate_coefficients
from ..surrogate import ATan, Sigmoid, Surrogate, coerce_surrogate

__all__ = ["IFNode", "LIFNode", "ParametricLIFNode", "LeakyNode", "TETLIFNode", "MASNNLIFNode", "AttResLIFNode"]


def in_recompute() -> bool:
    """Whether this forward runs inside a backward pass with grad enabled: activation checkpointing's
    recompute (reentrant or not). Never true while torch.compile traces."""
    if torch.compiler.is_compiling():
        return False
    return torch.is_grad_enabled() and torch._C._current_graph_task_id() != -1


class _SpikingNeuron(nn.Module):
    """Shared forward: fire-and-reset settings, step modes and optional state."""

    def __init__(
        self,
        *,
        v_threshold: float,
        v_reset: float | None,
        strict_threshold: bool,
        detach_reset: bool,
        surrogate_function: Surrogate,
        step_mode: str,
        backend: str,
        store_v_seq: bool,
        stateful: bool,
        v_init_value: float = 0.0,
    ) -> None:
        super().__init__()
        if step_mode not in ("m", "s"):
            raise ValueError(f"step_mode must be 'm' (input [T, ...]) or 's' (one step [...]), got {step_mode!r}")
        if store_v_seq:
            raise ValueError(
                "store_v_seq=True is not supported: the fused kernels never materialise the membrane sequence. "
                "Use snnkernels.reference.multistep_leaky_reference step by step if you need it."
            )
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.strict_threshold = strict_threshold
        self.detach_reset = detach_reset
        self.surrogate_function = coerce_surrogate(surrogate_function)
        self.step_mode = step_mode
        self.backend = backend
        self.stateful = stateful or step_mode == "s"
        self.v_init_value = v_init_value
        self.v: torch.Tensor | None = None
        # firing statistics (see the module docstring); plain attributes, not part of the state dict
        self.record_spike_counts = False
        self.spike_counts: torch.Tensor | None = None

    def coefficients(self) -> tuple[Number, Number, Number]:
        """(decay, input_gain, bias) of the charge ``h = decay * v + input_gain * x + bias``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the carried state (SpikingJelly's ``reset_net`` calls this)."""
        self.v = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.unsqueeze(0) if self.step_mode == "s" else x
        recompute = in_recompute()
        if recompute and self.stateful and self.v is not None:
            raise RuntimeError(
                f"{type(self).__name__}: activation checkpointing recomputes this stateful neuron (stateful=True "
                "or step_mode='s') in the backward pass, but its state is the one its forward left, not the one "
                "that forward started from, so the recompute would differ. Checkpoint stateless multi-step neurons "
                "(step_mode='m', stateful=False), or reset() the neurons between the forward and the backward "
                "when each forward starts from the resting state"
            )
        v_init = self.v if self.stateful else None
        if v_init is not None and v_init.shape != x_seq.shape[1:]:
            raise ValueError(
                f"{type(self).__name__}: carried state has shape {tuple(v_init.shape)} but this input's neurons "
                f"have shape {tuple(x_seq.shape[1:])}; call reset() between sequences of different shapes"
            )
        decay, gain, bias = self.coefficients()
        out = _leaky(
            x_seq,
            v_init,
            decay=decay,
            input_gain=gain,
            bias=bias,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            strict_threshold=self.strict_threshold,
            detach_reset=self.detach_reset,
            surrogate_function=self.surrogate_function,
            backend=self.backend,
            return_final_state=self.stateful,
            v_init_value=self.v_init_value,
            count_spikes=self.record_spike_counts and not recompute,
        )
        if self.record_spike_counts and not recompute:
            out, self.spike_counts = out
        if self.stateful:
            out, v_final = out
            if not recompute:  # the recompute leaves the state as the forward left it
                self.v = v_final
        return out[0] if self.step_mode == "s" else out

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"v_reset={self.v_reset}"
        return (
            f"v_threshold={self.v_threshold}, {reset}, strict_threshold={self.strict_threshold}, "
            f"detach_reset={self.detach_reset}, surrogate_function={self.surrogate_function}, "
            f"step_mode={self.step_mode!r}, backend={self.backend!r}, stateful={self.stateful}"
        )


class _SpikingJellyNode(_SpikingNeuron):
    """SpikingJelly's ``BaseNode`` rules, shared by ``IFNode``, ``LIFNode`` and ``ParametricLIFNode``: its
    keywords and defaults, fire on ``h >= v_threshold``, and a state that starts at ``v_reset`` (0 for soft
    reset)."""

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Surrogate = Sigmoid(),
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        backend: str = "auto",
        stateful: bool = False,
    ) -> None:
        super().__init__(
            v_threshold=v_threshold, v_reset=v_reset, strict_threshold=False, detach_reset=detach_reset,
            surrogate_function=surrogate_function, step_mode=step_mode, backend=backend, store_v_seq=store_v_seq,
            stateful=stateful, v_init_value=0.0 if v_reset is None else float(v_reset),
        )


class LIFNode(_SpikingJellyNode):
    """SpikingJelly's ``LIFNode`` (same keywords and defaults), fused over time.

    ``h = v + (x - (v - v_reset)) / tau`` (``decay_input``) or ``h = v - (v - v_reset) / tau + x``; fire on
    ``h >= v_threshold``; hard reset to ``v_reset`` or soft reset (``v_reset=None``). The state starts at
    ``v_reset`` (0 for soft reset). Input ``[T, ...]`` in step mode ``'m'``, ``[...]`` in ``'s'``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Surrogate = Sigmoid(),
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        backend: str = "auto",
        stateful: bool = False,
    ) -> None:
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a positive finite float, got {tau!r}")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq,
                         backend=backend, stateful=stateful)
        self.tau = float(tau)
        self.decay_input = decay_input

    def coefficients(self) -> tuple[Number, Number, Number]:
        return rate_coefficients(1.0 / self.tau, self.decay_input, self.v_reset)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decay_input={self.decay_input}, " + super().extra_repr()


class IFNode(_SpikingJellyNode):
    """SpikingJelly's ``IFNode`` (same keywords and defaults): the integrate-and-fire neuron, fused over time.

    ``h = v + x`` (the leaky neuron with decay 1, input gain 1, no bias); fire on ``h >= v_threshold``; hard
    reset to ``v_reset`` or soft reset (``v_reset=None``). The state starts at ``v_reset`` (0 for soft
    reset). Input ``[T, ...]`` in step mode ``'m'``, ``[...]`` in ``'s'``.
    """

    def coefficients(self) -> tuple[Number, Number, Number]:
        # 1 * v + 1 * x + 0 is v + x exactly (up to the sign of a zero sum), so the spikes are SpikingJelly's
        return 1.0, 1.0, 0.0


class ParametricLIFNode(_SpikingJellyNode):
    """SpikingJelly's ``ParametricLIFNode`` (PLIF): LIF whose leak rate ``1/tau = sigmoid(w)`` is learned.

    ``w`` is a 0-d parameter initialised to ``-log(init_tau - 1)`` (so ``tau = init_tau``), as in
    SpikingJelly, so its state dicts load unchanged. The gradient of ``w`` is reduced deterministically.
    """

    def __init__(
        self,
        init_tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function: Surrogate = Sigmoid(),
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        backend: str = "auto",
        stateful: bool = False,
    ) -> None:
        if not (isinstance(init_tau, (int, float)) and init_tau > 1):
            raise ValueError(f"init_tau must be > 1 (the rate sigmoid(w) lies in (0, 1)), got {init_tau!r}")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq,
                         backend=backend, stateful=stateful)
        self.decay_input = decay_input
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.0)))

    def coefficients(self) -> tuple[Number, Number, Number]:
        return rate_coefficients(self.w.sigmoid(), self.decay_input, self.v_reset)

    def extra_repr(self) -> str:
        tau = 1.0 / torch.sigmoid(self.w.detach()).item()
        return f"tau={tau:.4g}, decay_input={self.decay_input}, " + super().extra_repr()


class LeakyNode(_SpikingNeuron):
    """The general leaky neuron ``h = decay * v + input_gain * x + bias`` as a module.

    With ``channels=C`` and ``learnable=True``, ``decay`` and ``input_gain`` become [C] parameters applied
    along dim 2 of ``[T, B, C, ...]`` (STAA's per-channel M and N); their gradients are reduced
    deterministically. The state starts at 0.
    """

    def __init__(
        self,
        decay: float = 0.5,
        input_gain: float = 1.0,
        bias: float = 0.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        strict_threshold: bool = False,
        detach_reset: bool = False,
        surrogate_function: Surrogate = ATan(),
        *,
        channels: int | None = None,
        learnable: bool = False,
        step_mode: str = "m",
        backend: str = "auto",
        stateful: bool = False,
    ) -> None:
        super().__init__(
            v_threshold=v_threshold, v_reset=v_reset, strict_threshold=strict_threshold, detach_reset=detach_reset,
            surrogate_function=surrogate_function, step_mode=step_mode, backend=backend, store_v_seq=False,
            stateful=stateful,
        )
        if learnable:
            shape = () if channels is None else (int(channels),)
            self.decay = nn.Parameter(torch.full(shape, float(decay)))
            self.input_gain = nn.Parameter(torch.full(shape, float(input_gain)))
        elif channels is not None:
            raise ValueError("channels is only meaningful with learnable=True (fixed coefficients are scalars)")
        else:
            self.decay = float(decay)
            self.input_gain = float(input_gain)
        self.bias = float(bias)

    @classmethod
    def from_preset(cls, preset: NeuronPreset, **overrides) -> "LeakyNode":
        settings = dict(
            decay=preset.decay, v_threshold=preset.v_threshold, v_reset=preset.v_reset,
            strict_threshold=preset.strict_threshold, detach_reset=preset.detach_reset,
            surrogate_function=preset.surrogate,
        )
        settings.update(overrides)
        return cls(**settings)

    def coefficients(self) -> tuple[Number, Number, Number]:
        return self.decay, self.input_gain, self.bias

    def extra_repr(self) -> str:
        learn = isinstance(self.decay, torch.Tensor)
        head = "learnable decay/input_gain" if learn else f"decay={self.decay}, input_gain={self.input_gain}"
        return f"{head}, bias={self.bias}, " + super().extra_repr()


def _preset_node(preset: NeuronPreset, doc: str):
    class PresetNode(LeakyNode):
        def __init__(self, *, surrogate_function: Surrogate | None = None, step_mode: str = "m",
                     backend: str = "auto", stateful: bool = False) -> None:
            super().__init__(
                decay=preset.decay, v_threshold=preset.v_threshold, v_reset=preset.v_reset,
                strict_threshold=preset.strict_threshold, detach_reset=preset.detach_reset,
                surrogate_function=preset.surrogate if surrogate_function is None else surrogate_function,
                step_mode=step_mode, backend=backend, stateful=stateful,
            )

    PresetNode.__doc__ = doc
    PresetNode.preset = preset
    return PresetNode


class TETLIFNode(_preset_node(TET_LIF, "")):
    """TET / DTA-SNN ``LIFSpike``: ``m = 0.5 m + x``; fire on ``m > 1``; hard reset to 0 (not detached);
    triangle surrogate (gamma 1)."""


class MASNNLIFNode(_preset_node(MA_SNN_LIF, "")):
    """MA-SNN neuron (released code): ``u = h + x``; fire on ``u >= 0.3``; ``h = 0.3 * (s ? 0.3 : u)``
    (reset to the threshold, then decay); rectangle surrogate, width 0.5 (Gesture, Gait) by default; pass
    ``surrogate_function=Rectangle(1.0)`` for the CIFAR10-DVS setting."""


class AttResLIFNode(_preset_node(ATT_RES_LIF, "")):
    """Att-Res-SNN neuron: ``u = 0.25 u (1 - detach(s)) + x``; fire on ``u > 0.5``; rectangle width 1."""
