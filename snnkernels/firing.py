"""Firing statistics of a network's snnkernels neurons: spike counts, firing rates, NASAR, synaptic
operations and the MA-SNN paper's energy estimate.

::

    with snnkernels.firing.record(model) as stats:
        for x, _ in loader:
            model(x)
    print(stats.summary())
    stats.nasar(), stats.synaptic_operations(), stats.energy(macs=encoder_macs)

``record`` turns on ``record_spike_counts`` on every snnkernels neuron module of the model (the
``SpikingNeuron`` family: ``LIFNode``, ``ParametricLIFNode``, ``LeakyNode`` and the paper presets),
collects each forward's spikes per step, and restores the flags on exit. On the Triton backend the forward
kernel counts the spikes as it fires them, so recording costs no second pass over the spikes; on the other
backends the neuron sums its spikes after the forward (a second pass). The spikes, and hence the model's
outputs, are the same with and without recording. Counts stay on the device until a statistic is asked
for (one transfer then), and accumulate over forwards until ``reset()``.

Definitions (MA-SNN, Yao et al., "Attention Spiking Neural Networks", TPAMI 2023, Sec. 4):

- NSAR at step t: the spikes of all recorded neurons at step t over the number of those neurons;
- NASAR (network average spiking activity rate): the mean of NSAR over the T steps. With the same neuron
  count at every step (the usual case: all forwards of one T) it equals total spikes / total neuron-steps,
  and "spike count = NASAR x neuron number x T" as the paper states;
- synaptic operations (SOPs, the paper's AC operations of every Conv / FC layer after the encoder):
  each spike of a layer costs one accumulate per synapse it drives, so SOPs = sum over neuron layers of
  spikes x ``fan_out`` of the layer that consumes them;
- energy (Eq. 17): ``E = E_MAC * MACs + E_AC * SOPs``, with the encoder layer's dense MACs given by the caller
  (``dense_macs``) and the 45 nm, 32-bit float per-operation energies that the paper uses (after Horowitz,
  ISSCC 2014): ``E_MAC = 4.6 pJ``, ``E_AC = 0.9 pJ``.

Samples and steps: per-sample figures divide by the samples seen, the batch size (dim 1 of a multi-step
input [T, B, ...], dim 0 of a step-mode input [B, ...]) summed over sequences. A neuron that carries its state
(step mode ``'s'``, or multi-step with ``stateful=True``, SpikingJelly's default) continues its sequence from call
to call until its state is reset (``v`` is its resting float again, e.g. after ``reset()``): its calls then
count as later steps of the same samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Real

import torch
from torch import nn

from .nn.fused import observer_hook
from .nn.neuron import SpikingNeuron, in_recompute

__all__ = [
    "E_AC",
    "E_MAC",
    "LayerStats",
    "FiringStats",
    "record",
    "fan_out",
    "dense_macs",
    "energy",
    "default_consumers",
]

# Energy per operation, 32-bit float in 45 nm CMOS, as MA-SNN Sec. 4 takes them (Horowitz, ISSCC 2014).
E_AC = 0.9e-12  # J per accumulate
E_MAC = 4.6e-12  # J per multiply-accumulate

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
Consumer = nn.Module | Real | None


def fan_out(module: nn.Module) -> float:
    """Synapses that one input spike drives in ``module``: the accumulates it triggers.

    ``nn.Linear``: ``out_features``. ``nn.Conv1d/2d/3d``: ``out_channels / groups * prod(kernel_size) /
    prod(stride)``, the usual estimate: an input element meets each kernel tap of its group's output
    channels once per output position that covers it, which averages to prod(kernel) / prod(stride) away
    from the borders (padding and borders are ignored; dilation does not change it).
    """
    if isinstance(module, nn.Linear):
        return float(module.out_features)
    if isinstance(module, _CONVS):
        per_channel = math.prod(module.kernel_size) / math.prod(module.stride)
        return module.out_channels / module.groups * per_channel
    raise TypeError(
        f"fan_out: unsupported module {type(module).__name__}; it knows nn.Linear and nn.Conv1d/2d/3d. Pass the "
        "fan-out as a number in consumers={neuron_name: number} for other layers"
    )


def dense_macs(module: nn.Module, output_shape: Sequence[int]) -> int:
    """Multiply-accumulates of computing ``output_shape`` densely with ``module`` (nn.Linear or nn.Conv*d):
    the encoder layer's MACs of MA-SNN Eq. 17, whose input is real-valued rather than spikes. Pass one
    sample's output shape (times T for a layer applied at every step) to get a per-sample figure."""
    outputs = math.prod(int(d) for d in output_shape)
    if isinstance(module, nn.Linear):
        return outputs * module.in_features
    if isinstance(module, _CONVS):
        return outputs * module.in_channels // module.groups * math.prod(module.kernel_size)
    raise TypeError(f"dense_macs: unsupported module {type(module).__name__}; it knows nn.Linear and nn.Conv1d/2d/3d")


def energy(sops: float, macs: float = 0.0, *, e_ac: float = E_AC, e_mac: float = E_MAC) -> float:
    """MA-SNN Eq. 17: ``e_mac * macs + e_ac * sops`` in joules (defaults: the paper's 45 nm energies)."""
    if sops < 0 or macs < 0:
        raise ValueError(f"energy: operation counts must be >= 0, got sops={sops}, macs={macs}")
    return e_mac * macs + e_ac * sops


def default_consumers(model: nn.Module) -> dict[str, str | None]:
    """The documented heuristic: each neuron layer's spikes go to the next nn.Linear / nn.Conv*d registered
    after it (``named_modules`` order), None when there is none (the output layer). Right for plain feed-forward
    stacks; check it, and pass ``consumers`` to ``record``, for residual or attention branches."""
    consumers: dict[str, str | None] = {}
    waiting: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, SpikingNeuron):
            waiting.append(name)
        elif isinstance(module, (nn.Linear, *_CONVS)):
            consumers.update({n: name for n in waiting})
            waiting = []
    consumers.update({n: None for n in waiting})
    return consumers


@dataclass
class LayerStats:
    """One neuron layer's accumulated counts."""

    name: str
    consumer: str | None  # the module fed by this layer's spikes (a name, or a description)
    fan_out: float | None  # synapses per spike in that module; None: no consumer, no SOPs
    spikes_per_step: torch.Tensor | None = None  # int64 [steps], on the model's device
    neurons_per_step: list[int] = field(default_factory=list)  # neurons summed over forwards, per step
    samples: int = 0
    forwards: int = 0

    def add(self, counts: torch.Tensor, offset: int, neurons: int) -> None:
        end = offset + counts.numel()
        if self.spikes_per_step is None:
            self.spikes_per_step = torch.zeros(end, dtype=torch.int64, device=counts.device)
        elif self.spikes_per_step.numel() < end:  # a longer sequence than before
            pad = self.spikes_per_step.new_zeros(end - self.spikes_per_step.numel())
            self.spikes_per_step = torch.cat([self.spikes_per_step, pad])
        self.spikes_per_step[offset:end] += counts.to(self.spikes_per_step.device)
        self.neurons_per_step += [0] * (end - len(self.neurons_per_step))
        for t in range(offset, end):
            self.neurons_per_step[t] += neurons
        self.forwards += 1


class FiringStats:
    """Counts collected by ``record``; every statistic reads the device counts once."""

    def __init__(self, layers: dict[str, LayerStats]) -> None:
        self.layers = layers
        self._next_step: dict[str, int] = {}  # stateful layers: step index in the current sequence

    def reset(self) -> None:
        """Forget every count (the layers and their consumers stay)."""
        for layer in self.layers.values():
            layer.spikes_per_step, layer.neurons_per_step, layer.samples, layer.forwards = None, [], 0, 0
        self._next_step.clear()

    @property
    def unrecorded(self) -> list[str]:
        """Neuron layers that ran no forward while recording (e.g. called outside the model's forward)."""
        return [name for name, layer in self.layers.items() if layer.forwards == 0]

    @property
    def samples(self) -> int:
        """Samples seen (the largest count over the layers; in a plain network all agree)."""
        return max((layer.samples for layer in self.layers.values()), default=0)

    def spike_counts(self) -> dict[str, list[int]]:
        """Spikes per step of each layer that ran, as Python ints (one device-to-host transfer)."""
        ran = {name: layer for name, layer in self.layers.items() if layer.forwards}
        if not ran:
            raise ValueError("firing statistics: no forward pass was recorded (run the model inside record())")
        rows = [layer.spikes_per_step for layer in ran.values()]
        width = max(r.numel() for r in rows)
        table = torch.stack([nn.functional.pad(r.to(rows[0].device), (0, width - r.numel())) for r in rows]).tolist()
        return {name: row[: len(layer.neurons_per_step)] for (name, layer), row in zip(ran.items(), table, strict=True)}

    def firing_rates(self) -> dict[str, float]:
        """Each layer's spikes over its neuron-steps."""
        return {n: _ratio(sum(c), sum(self.layers[n].neurons_per_step)) for n, c in self.spike_counts().items()}

    def nsar(self) -> list[float]:
        """Network spiking activity rate at each step: all layers' spikes at t over their neurons at t."""
        return self._nsar(self.spike_counts())

    def _nsar(self, counts: dict[str, list[int]]) -> list[float]:
        steps = max(len(c) for c in counts.values())
        spikes, neurons = [0] * steps, [0] * steps
        for name, row in counts.items():
            for t, (s, n) in enumerate(zip(row, self.layers[name].neurons_per_step, strict=True)):
                spikes[t] += s
                neurons[t] += n
        return [s / n for s, n in zip(spikes, neurons, strict=True) if n]

    def nasar(self) -> float:
        """Network average spiking activity rate: the mean of ``nsar()`` over the steps (MA-SNN Sec. 4)."""
        return self._nasar(self.spike_counts())

    def _nasar(self, counts: dict[str, list[int]]) -> float:
        rates = self._nsar(counts)
        if not rates:
            raise ValueError("firing statistics: the recorded layers have no neurons, so NASAR is undefined")
        return sum(rates) / len(rates)

    def total_spikes(self, per_sample: bool = False) -> float:
        """Spikes of all recorded layers (per sample: the paper's "spike count")."""
        total = sum(sum(c) for c in self.spike_counts().values())
        return total / self._samples() if per_sample else total

    def synaptic_operations(self, per_sample: bool = True) -> float:
        """SOPs: sum over layers of spikes x fan-out of the consuming layer (layers without one add none)."""
        sops = self._sops(self.spike_counts())
        return sops / self._samples() if per_sample else sops

    def _sops(self, counts: dict[str, list[int]]) -> float:
        return sum(sum(c) * self.layers[n].fan_out for n, c in counts.items() if self.layers[n].fan_out is not None)

    def energy(self, macs: float = 0.0, *, per_sample: bool = True, e_ac: float = E_AC, e_mac: float = E_MAC) -> float:
        """MA-SNN Eq. 17 in joules: ``e_mac * macs + e_ac * SOPs``; ``macs`` are the encoder layer's
        (``dense_macs``), given per sample when ``per_sample`` (the default), else in total."""
        return energy(self.synaptic_operations(per_sample), macs, e_ac=e_ac, e_mac=e_mac)

    def summary(self) -> str:
        """A per-layer table (spikes, neuron-steps, rate, consumer, fan-out, SOPs) and the network figures,
        from one read of the counts."""
        counts = self.spike_counts()
        header = (
            f"{'layer':<28} {'spikes':>12} {'neuron-steps':>14} {'rate':>8}  {'consumer':<20} {'fan-out':>9} "
            f"{'SOPs':>14}"
        )
        lines = [header]
        for name, row in counts.items():
            layer = self.layers[name]
            spikes, steps = sum(row), sum(layer.neurons_per_step)
            fo = "-" if layer.fan_out is None else f"{layer.fan_out:.4g}"
            sops = "-" if layer.fan_out is None else f"{spikes * layer.fan_out:.6g}"
            lines.append(
                f"{name:<28} {spikes:>12} {steps:>14} {_ratio(spikes, steps):>8.4f}  {layer.consumer!s:<20} "
                f"{fo:>9} {sops:>14}"
            )
        lines.append(f"NASAR {self._nasar(counts):.4f}; samples {self.samples}; SOPs {self._sops(counts):.6g} in total")
        if self.unrecorded:
            lines.append(f"not recorded (no forward ran): {', '.join(self.unrecorded)}")
        return "\n".join(lines)

    def _samples(self) -> int:
        if self.samples == 0:
            raise ValueError(
                "firing statistics: no samples recorded, so there is no per-sample figure "
                "(run the model inside record(), or pass per_sample=False)"
            )
        return self.samples

    def _hooks(self, name: str):
        """(pre-hook, hook) that feed one neuron module's counts into ``self.layers[name]``."""
        layer = self.layers[name]

        def pre(module: SpikingNeuron, args: tuple) -> None:
            if in_recompute():  # activation checkpointing's second run of a forward already counted
                return
            # a stateless call, or a stateful one from a reset state, starts a sequence (and its samples);
            # a stateful call that carries a state continues it, at the next step index
            if not module.carries_state or not isinstance(module.v, torch.Tensor) or name not in self._next_step:
                self._next_step[name] = 0
                layer.samples += _batch(args[0], module.step_mode)
            module.spike_counts = None  # so that a forward that did not count adds nothing stale

        def post(module: SpikingNeuron, args: tuple, output: object) -> None:
            counts = module.spike_counts
            if counts is None or in_recompute():
                return
            x = args[0]
            layer.add(counts, self._next_step[name], x.numel() if module.step_mode == "s" else x[0].numel())
            self._next_step[name] += counts.numel()

        return pre, post


def _batch(x: torch.Tensor, step_mode: str) -> int:
    """Samples in one neuron input: B of [T, B, ...] (multi-step) or of [B, ...] (one step)."""
    dim = 1 if step_mode == "m" else 0
    return x.shape[dim] if x.dim() > dim else 1


def _warn_unrecorded(stats: FiringStats) -> None:
    """Layers that never ran their own forward while others did are missing from every figure: say so."""
    missing = stats.unrecorded
    if missing and len(missing) < len(stats.layers):
        warnings.warn(
            f"firing.record: neuron layers {missing} ran no forward while recording, so their spikes are "
            "missing from the statistics",
            stacklevel=3,
        )


def _ratio(spikes: int, neuron_steps: int) -> float:
    return spikes / neuron_steps if neuron_steps else float("nan")


def _neurons(model: nn.Module) -> dict[str, SpikingNeuron]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"record: model must be a torch.nn.Module, got {type(model).__name__}")
    found = {name: m for name, m in model.named_modules() if isinstance(m, SpikingNeuron)}
    if not found:
        raise ValueError(
            f"record: {type(model).__name__} has no snnkernels neuron modules (LIFNode, ParametricLIFNode, "
            "LeakyNode and the presets of snnkernels.nn), so there is nothing to count"
        )
    return found


def _resolve_consumers(
    model: nn.Module, neurons: dict[str, SpikingNeuron], consumers: Mapping[str, Consumer] | None
) -> dict[str, tuple[str | None, float | None]]:
    """name -> (consumer description, fan-out): the heuristic, overridden by ``consumers`` entry by entry."""
    if consumers is not None and not isinstance(consumers, Mapping):
        raise TypeError(
            f"record: consumers must be a mapping {{neuron_name: module | number | None}}, "
            f"got {type(consumers).__name__}"
        )
    unknown = sorted(set(consumers or {}) - set(neurons))
    if unknown:
        raise ValueError(
            f"record: consumers names {unknown} are not neuron modules of the model; "
            f"its neuron modules are {sorted(neurons)}"
        )
    modules = dict(model.named_modules())
    resolved = {n: (c, None if c is None else fan_out(modules[c])) for n, c in default_consumers(model).items()}
    for name, consumer in (consumers or {}).items():
        resolved[name] = _explicit_consumer(name, consumer)
    return resolved


def _explicit_consumer(name: str, consumer: Consumer) -> tuple[str | None, float | None]:
    if consumer is None:
        return None, None
    if isinstance(consumer, bool) or not isinstance(consumer, (nn.Module, Real)):
        raise TypeError(
            f"record: consumers[{name!r}] must be an nn.Module, a number (the fan-out) or None, "
            f"got {type(consumer).__name__}"
        )
    if isinstance(consumer, nn.Module):
        return type(consumer).__name__, fan_out(consumer)
    if not (math.isfinite(consumer) and consumer >= 0):
        raise ValueError(f"record: consumers[{name!r}] as a fan-out must be a finite number >= 0, got {consumer}")
    return "given", float(consumer)


@contextmanager
def record(model: nn.Module, consumers: Mapping[str, Consumer] | None = None) -> Iterator[FiringStats]:
    """Record the spikes of every snnkernels neuron module of ``model`` while the block runs.

    Args:
        model (nn.Module): the network; its ``SpikingNeuron`` modules (all snnkernels leaky neuron
            modules, also when an attention's gate runs inside them: ``nn.fused``, whose kernel counts too)
            are recorded under their ``named_modules`` names.
        consumers (Mapping, Optional): ``{neuron_name: module | fan-out | None}``, the layer fed by each
            neuron layer's spikes, for the synaptic operations: an nn.Linear / nn.Conv*d (``fan_out``), a
            number (the fan-out itself) or None (no consumer: the output layer). Names left out follow
            ``default_consumers`` (the next Conv / Linear in registration order).

    Yields:
        FiringStats, accumulating over every forward in the block (and usable after it) until ``reset()``.
        On exit the modules' ``record_spike_counts`` flags are restored and the hooks removed.
    """
    neurons = _neurons(model)
    resolved = _resolve_consumers(model, neurons, consumers)
    stats = FiringStats({n: LayerStats(n, *resolved[n]) for n in neurons})
    flags = {n: m.record_spike_counts for n, m in neurons.items()}
    handles = []
    try:
        for name, module in neurons.items():
            pre, post = stats._hooks(name)
            # observers (they read the input and the counts only), so fused paths that never form the
            # spikes as a tensor (nn.fused.neuron_dta) still run and are recorded
            handles += [
                module.register_forward_pre_hook(observer_hook(pre)),
                module.register_forward_hook(observer_hook(post)),
            ]
            module.record_spike_counts = True
        yield stats
        _warn_unrecorded(stats)
    finally:
        for handle in handles:
            handle.remove()
        for name, module in neurons.items():
            module.record_spike_counts = flags[name]
