"""Neuron modules: parameter ownership and state handling only; the math is in ``snnkernels.functional``.

``IFNode``, ``LIFNode`` and ``ParametricLIFNode`` take SpikingJelly's keyword names and defaults and follow its
module contract (``snnkernels.nn.memory.MemoryModule``, docs/spikingjelly.md), so swapping the import is
enough:

- the membrane potential is the memory ``v``: ``v_reset`` (0.0 for soft reset) after construction and after
  ``reset()`` (SpikingJelly's ``functional.reset_net`` calls it), the final state after a forward;
- both step modes carry ``v`` from call to call, as in SpikingJelly; a carried state of another shape (a new
  batch size) restarts from ``v_reset``, a float ``v`` is broadcast to the input's shape;
- ``functional_forward``, ``detach()``, ``store_v_seq`` (``v_seq`` after each forward), ``step_mode``
  switched after construction, SpikingJelly surrogate objects used live.

``stateful=False`` makes multi-step calls start from the resting state each time and keep no final state:
what a SpikingJelly model computes when ``reset_net`` is called between batches, without storing v_T. It is the
default of the paper presets and ``LeakyNode`` (their papers' code starts every forward from rest) and what
the fused attention + neuron paths and activation checkpointing need. Step mode ``'s'`` always carries ``v``.

Deliberate differences from SpikingJelly are listed in docs/spikingjelly.md "Deliberate differences": the
state is fp32 for fp16 / bf16 input (SpikingJelly keeps the input's dtype), and the charge is computed as
``decay * v + input_gain * x + bias``, which can flip a spike whose potential lies within an ulp of the
threshold.

Under activation checkpointing (``torch.utils.checkpoint``) the recompute in the backward pass is side-effect
free: it neither updates the carried state nor adds spike counts. A neuron that carries a state left by an
earlier forward raises there instead of silently recomputing from the wrong state.

Firing statistics: set ``record_spike_counts = True`` on a neuron (or use ``snnkernels.firing.record``) and
each forward leaves ``spike_counts``, the spikes per step (int64 [T], [1] in step mode ``'s'``, detached).
On the Triton backend the forward kernel counts them as it fires (no second pass over the spikes); on the
others they are summed from the spikes afterwards. The spikes themselves are the same either way.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .. import _checks
from ..backends import BACKENDS, check_backend_name
from ..functional import leaky_neuron
from ..neuron_models import ATT_RES_LIF, MA_SNN_LIF, TET_LIF, NeuronPreset, Number, rate_coefficients
from ..reference.leaky import state_dtype
from ..surrogate import ATan, Sigmoid, Surrogate, coerce_surrogate
from .memory import MemoryModule

__all__ = ["IFNode", "LIFNode", "ParametricLIFNode", "LeakyNode", "TETLIFNode", "MASNNLIFNode", "AttResLIFNode"]


def in_recompute() -> bool:
    """Whether this forward runs inside a backward pass with grad enabled: activation checkpointing's
    recompute (reentrant or not). Never true while torch.compile traces."""
    if torch.compiler.is_compiling():
        return False
    return torch.is_grad_enabled() and torch._C._current_graph_task_id() != -1


class SpikingNeuron(MemoryModule):
    """Shared forward of the leaky neurons: fire-and-reset settings, step modes and the memory ``v``."""

    def __init__(
        self,
        *,
        v_threshold: float,
        v_reset: float | None,
        strict_threshold: bool,
        detach_reset: bool,
        surrogate_function: Any,
        step_mode: str,
        backend: str,
        store_v_seq: bool,
        stateful: bool,
        v_init_value: float = 0.0,
    ) -> None:
        super().__init__()
        self.v_init_value = float(_checks.check_scalar(v_init_value, "v_init_value"))
        self.register_memory("v", self.v_init_value)
        self.v_threshold = _checks.check_scalar(v_threshold, "v_threshold")
        self.v_reset = _checks.check_scalar(v_reset, "v_reset", allow_none=True)
        self.strict_threshold = bool(strict_threshold)
        self.detach_reset = bool(detach_reset)
        coerce_surrogate(surrogate_function)  # refuse an unsupported surrogate now, not at the first forward
        # kept as given: a SpikingJelly surrogate stays a live submodule (a later change of its alpha applies)
        self.surrogate_function = surrogate_function
        self.step_mode = step_mode
        self.backend = check_backend_name(backend, type(self).__name__, BACKENDS)
        self.stateful = bool(stateful)
        self.store_v_seq = store_v_seq
        # firing statistics (see the module docstring); plain attributes, not part of the state dict
        self.record_spike_counts = False
        self.spike_counts: torch.Tensor | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            name == "surrogate_function"
            and not isinstance(value, nn.Module)
            and name in self.__dict__.get("_modules", {})
        ):
            del self._modules[name]  # a SpikingJelly surrogate (a submodule) replaced by a plain object
        super().__setattr__(name, value)

    @property
    def store_v_seq(self) -> bool:
        """Keep the membrane sequence of each forward in ``v_seq`` (post-reset states, [T, ...], fp32); the
        kernels write it only when this is set. Setting it clears ``v_seq``."""
        return self._store_v_seq

    @store_v_seq.setter
    def store_v_seq(self, value: bool) -> None:
        self._store_v_seq = bool(value)
        self.v_seq: torch.Tensor | None = None

    @property
    def carries_state(self) -> bool:
        """Whether a call in the current step mode starts from ``v`` and leaves its final state there."""
        return self.stateful or self.step_mode == "s"

    def coefficients(self) -> tuple[Number, Number, Number]:
        """(decay, input_gain, bias) of the charge ``h = decay * v + input_gain * x + bias``."""
        raise NotImplementedError

    def leaky_settings(self) -> dict[str, Any]:
        """The leaky neuron's keyword settings of this neuron (``functional.multistep_leaky``'s names): the
        coefficients, threshold, reset and surrogate."""
        decay, gain, bias = self.coefficients()
        settings = {"decay": decay, "input_gain": gain, "bias": bias}
        for name in ("v_threshold", "v_reset", "strict_threshold", "detach_reset", "surrogate_function"):
            settings[name] = getattr(self, name)
        return settings

    def reset(self) -> None:
        """``v`` back to its resting value and ``v_seq`` cleared (SpikingJelly's ``reset_net`` calls this)."""
        super().reset()
        self.v_seq = None

    def detach(self) -> None:
        super().detach()
        if isinstance(self.v_seq, torch.Tensor):
            self.v_seq = self.v_seq.detach()

    # -- the state -------------------------------------------------------------------------------------
    def _state_for(self, v: Any, x0: torch.Tensor) -> float | torch.Tensor:
        """The state a call on input step ``x0`` starts from, by SpikingJelly's rules: a float is broadcast,
        a tensor of another shape (a new batch size) restarts from rest, a tensor of the right shape is
        moved to x0's device and the state dtype (fp32; fp64 for fp64 input)."""
        if isinstance(v, bool) or not isinstance(v, (int, float, torch.Tensor)):
            raise TypeError(f"{type(self).__name__}.v must be a float or a tensor, got {type(v).__name__}")
        if not isinstance(v, torch.Tensor):
            return float(v)
        if v.shape != x0.shape:
            return self.v_init_value
        return v.to(device=x0.device, dtype=state_dtype(x0.dtype))

    def materialize_states(self, inputs: tuple, states: tuple, step_mode: str) -> tuple:
        """``functional_forward``'s states as tensors of one input step's shape (see ``_state_for``)."""
        x0 = inputs[0][0] if step_mode == "m" else inputs[0]
        v = self._state_for(states[0], x0)
        if not isinstance(v, torch.Tensor):
            v = torch.full(x0.shape, v, dtype=state_dtype(x0.dtype), device=x0.device)
        return (v, *states[1:])

    # -- forward ---------------------------------------------------------------------------------------
    def single_step_functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any) -> tuple[tuple, tuple]:
        spikes, v_final, *_ = self._run(inputs[0].unsqueeze(0), states[0], final_state=True)
        return (spikes[0],), (v_final, *states[1:])

    def multi_step_functional_forward(self, inputs: tuple, states: tuple, **kwargs: Any) -> tuple[tuple, tuple]:
        spikes, v_final, *_ = self._run(inputs[0], states[0], final_state=True)
        return (spikes,), (v_final, *states[1:])

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        x_seq = x.unsqueeze(0) if isinstance(x, torch.Tensor) else x
        return self._forward(x_seq, carry=True, single_step=True)[0]

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return self._forward(x_seq, carry=self.stateful, single_step=False)

    def fire_packed(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(self(x_seq), its spikes packed)`` for a spike layer after this neuron (``SpikeConv2d.forward(s,
        packed)``): on Triton the forward kernel writes the packed copy as it fires, elsewhere it is packed in a
        pass of its own (docs/spike_pack.md "Packed by the neuron"). The copy is None where the call is not a
        plain multi-step forward: single-step mode, or forward hooks (they get the module's own call, unchanged).

        Args:
            x_seq (Tensor): [T, ...] input, as ``forward``'s.
        """
        if self.step_mode != "m" or self._forward_hooks or self._forward_pre_hooks:
            return self(x_seq), None
        return self._forward(x_seq, carry=self.stateful, single_step=False, packed=True)

    def _forward(self, x_seq: torch.Tensor, *, carry: bool, single_step: bool, packed: bool = False):
        x_seq = _checks.check_sequence(x_seq, "input", min_dim=1)
        recompute = in_recompute()
        if recompute and carry and isinstance(self.v, torch.Tensor):
            raise RuntimeError(
                f"{type(self).__name__}: activation checkpointing recomputes this neuron, which carries its state "
                "(stateful=True or step_mode='s'), in the backward pass, but its state is the one its forward left, "
                "not the one that forward started from, so the recompute would differ. Checkpoint stateless "
                "multi-step neurons (step_mode='m', stateful=False), or reset() the neurons between the forward "
                "and the backward when each forward starts from the resting state"
            )
        v = self._state_for(self.v, x_seq[0]) if carry else self.v_init_value
        v_seq_wanted = self.store_v_seq and not recompute
        count = self.record_spike_counts and not recompute
        spikes, v_final, v_seq, counts, copy = self._run(
            x_seq, v, final_state=carry, v_seq=v_seq_wanted, count=count, packed=packed
        )
        if not recompute:  # the recompute leaves the state as the forward left it
            if carry:
                self.v = v_final
            if v_seq_wanted:
                self._keep_v_seq(v_seq, single_step)
            if count:
                self.spike_counts = counts
        return (spikes, copy) if packed else spikes

    def _keep_v_seq(self, v_seq: torch.Tensor, single_step: bool) -> None:
        """Multi-step: this call's sequence. Single step: appended to the sequence so far, restarted when the
        shape, device or dtype changes (SpikingJelly's rule)."""
        old = self.v_seq
        if (
            single_step
            and isinstance(old, torch.Tensor)
            and old.shape[1:] == v_seq.shape[1:]
            and (old.device == v_seq.device and old.dtype == v_seq.dtype)
        ):
            v_seq = torch.cat((old, v_seq))
        self.v_seq = v_seq

    def _run(
        self,
        x_seq: torch.Tensor,
        v: float | torch.Tensor,
        *,
        final_state: bool,
        v_seq: bool = False,
        count: bool = False,
        packed: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, Any, torch.Tensor | None]:
        """The fused neuron on ``x_seq`` [T, ...] from state ``v`` (a float fills every neuron): (spikes,
        v_T or None, v_seq or None, spike counts or None, packed spikes or None). A [T] input (one neuron) runs
        as [T, 1]."""
        one_neuron = x_seq.dim() == 1
        if one_neuron:
            x_seq = x_seq.unsqueeze(1)
            v = v.unsqueeze(0) if isinstance(v, torch.Tensor) else v
        v_init, v_init_value = (v, self.v_init_value) if isinstance(v, torch.Tensor) else (None, v)
        out = leaky_neuron(
            x_seq,
            v_init,
            **self.leaky_settings(),
            backend=self.backend,
            return_final_state=final_state,
            v_init_value=v_init_value,
            count_spikes=count,
            **({"return_v_seq": True} if v_seq else {}),
            **({"return_packed": True} if packed else {}),
        )
        counts = copy = None
        if count or packed:
            out, *extras = out
            counts = extras.pop(0) if count else None
            copy = extras.pop(0) if packed else None
        out = list(out) if isinstance(out, tuple) else [out]
        spikes = out.pop(0)
        v_final = out.pop(0) if final_state else None
        seq = out.pop(0) if v_seq else None
        if one_neuron:
            spikes = spikes.squeeze(1)
            v_final = None if v_final is None else v_final.squeeze(0)
            seq = None if seq is None else seq.squeeze(1)
        return spikes, v_final, seq, counts, copy

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"v_reset={self.v_reset}"
        return (
            f"v_threshold={self.v_threshold}, {reset}, strict_threshold={self.strict_threshold}, "
            f"detach_reset={self.detach_reset}, step_mode={self.step_mode!r}, backend={self.backend!r}, "
            f"stateful={self.stateful}"
        )


class _SpikingJellyNode(SpikingNeuron):
    """SpikingJelly's ``BaseNode`` rules, shared by ``IFNode``, ``LIFNode`` and ``ParametricLIFNode``: its
    keywords and defaults, fire on ``h >= v_threshold``, and a state that starts at ``v_reset`` (0 for soft
    reset)."""

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
        surrogate_function: Surrogate = Sigmoid(),  # noqa: B008
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        backend: str = "auto",
        stateful: bool = True,
    ) -> None:
        super().__init__(
            v_threshold=v_threshold,
            v_reset=v_reset,
            strict_threshold=False,
            detach_reset=detach_reset,
            surrogate_function=surrogate_function,
            step_mode=step_mode,
            backend=backend,
            store_v_seq=store_v_seq,
            stateful=stateful,
            v_init_value=0.0 if v_reset is None else float(v_reset),
        )


def _check_tau(value: float, name: str, why: str = "") -> None:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 1):
        raise ValueError(f"{name} must be a finite float > 1{why}, got {value!r}")


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
        surrogate_function: Surrogate = Sigmoid(),  # noqa: B008
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        backend: str = "auto",
        stateful: bool = True,
    ) -> None:
        # SpikingJelly's LIFNode asserts tau > 1 too: tau <= 1 makes the decay 1 - 1/tau <= 0
        _check_tau(tau, "tau")
        super().__init__(
            v_threshold,
            v_reset,
            surrogate_function,
            detach_reset,
            step_mode,
            store_v_seq,
            backend=backend,
            stateful=stateful,
        )
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
        surrogate_function: Surrogate = Sigmoid(),  # noqa: B008
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        *,
        backend: str = "auto",
        stateful: bool = True,
    ) -> None:
        _check_tau(init_tau, "init_tau", " (the rate sigmoid(w) lies in (0, 1))")
        super().__init__(
            v_threshold,
            v_reset,
            surrogate_function,
            detach_reset,
            step_mode,
            store_v_seq,
            backend=backend,
            stateful=stateful,
        )
        self.decay_input = decay_input
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.0)))

    def coefficients(self) -> tuple[Number, Number, Number]:
        return rate_coefficients(self.w.sigmoid(), self.decay_input, self.v_reset)

    def extra_repr(self) -> str:
        tau = 1.0 / torch.sigmoid(self.w.detach()).item()
        return f"tau={tau:.4g}, decay_input={self.decay_input}, " + super().extra_repr()


class LeakyNode(SpikingNeuron):
    """The general leaky neuron ``h = decay * v + input_gain * x + bias`` as a module.

    With ``channels=C`` and ``learnable=True``, ``decay`` and ``input_gain`` become [C] parameters applied
    along dim 2 of ``[T, B, C, ...]`` (STAA's per-channel M and N); their gradients are reduced
    deterministically. The state starts at 0. Multi-step calls are stateless unless ``stateful=True``.
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
        surrogate_function: Surrogate = ATan(),  # noqa: B008
        *,
        channels: int | None = None,
        learnable: bool = False,
        step_mode: str = "m",
        backend: str = "auto",
        stateful: bool = False,
        store_v_seq: bool = False,
    ) -> None:
        super().__init__(
            v_threshold=v_threshold,
            v_reset=v_reset,
            strict_threshold=strict_threshold,
            detach_reset=detach_reset,
            surrogate_function=surrogate_function,
            step_mode=step_mode,
            backend=backend,
            store_v_seq=store_v_seq,
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
    def from_preset(cls, preset: NeuronPreset, **overrides) -> LeakyNode:
        settings = dict(
            decay=preset.decay,
            v_threshold=preset.v_threshold,
            v_reset=preset.v_reset,
            strict_threshold=preset.strict_threshold,
            detach_reset=preset.detach_reset,
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
        def __init__(
            self,
            *,
            surrogate_function: Surrogate | None = None,
            step_mode: str = "m",
            backend: str = "auto",
            stateful: bool = False,
            store_v_seq: bool = False,
        ) -> None:
            super().__init__(
                decay=preset.decay,
                v_threshold=preset.v_threshold,
                v_reset=preset.v_reset,
                strict_threshold=preset.strict_threshold,
                detach_reset=preset.detach_reset,
                surrogate_function=preset.surrogate if surrogate_function is None else surrogate_function,
                step_mode=step_mode,
                backend=backend,
                stateful=stateful,
                store_v_seq=store_v_seq,
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
