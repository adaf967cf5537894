"""Building blocks shared by the networks of ``snnkernels.models``.

- Layout helpers: every network runs in the library layout [T, B, ...] inside and converts at its
  boundaries; the checks name the dimension that is wrong and hint at the other layout.
- Per-time-step containers with the attribute names of the official code, so that checkpoint keys match:
  ``SeqToANN`` (SpikingJelly's ``SeqToANNContainer``, an ``nn.Sequential``: keys ``<i>.<param>``, as in
  TCJA-SNN) and ``StepContainer`` / ``StepLayer`` / ``StepBatchNorm`` (DTA-SNN's ``SeqToANNContainer`` /
  ``tdLayer`` / ``tdBatchNorm``: keys ``module.<param>``, ``layer.module.<param>``, ``bn.<param>``).
- ``SharedMaskDropout`` (SpikingJelly's ``MultiStepDropout``: one mask for all time steps) and
  ``VotingLayer`` (TCJA-SNN's DVS128 read-out).
- ``resolved_backends``: which implementation each snnkernels layer of a network runs on a given input.
- Memory-lean layers (docs/models.md "Memory-lean layers: packed spikes and BatchNorm folded into the
  neuron"): ``spike_conv2d`` / ``spike_linear`` build the conv / linear that takes a neuron's spikes
  (``nn.SpikeConv2d`` / ``SpikeLinear``, the same parameters and keys as ``nn.Conv2d`` / ``nn.Linear``, input
  kept at 1 bit) or the plain layer under ``backend="torch"``;
  ``norm_neuron`` runs a BatchNorm -> neuron pair as one op where ``nn.bn_lif.bn_neuron`` can fuse it;
  ``fire_into`` / ``norm_neuron_into`` hand the neuron's packed spikes, written as it fires, to the spike layer
  that takes them (docs/spike_pack.md "Packed by the neuron").
"""

from __future__ import annotations

import torch
from torch import nn

from .. import functional as SF
from ..nn.attention import TCJAFamily
from ..nn.bn_lif import bn_neuron
from ..nn.fused import fusion_blocker, neuron_tcja_pool, notify_fusion
from ..nn.neuron import SpikingNeuron
from ..nn.spike_layers import SpikeConv2d, SpikeLinear, fire_packed, packing_backend, takes_packed

__all__ = [
    "LAYOUTS",
    "check_layout",
    "check_positive",
    "network_options",
    "split_backend",
    "to_time_major",
    "from_time_major",
    "SeqToANN",
    "StepContainer",
    "StepLayer",
    "StepBatchNorm",
    "SharedMaskDropout",
    "VotingLayer",
    "GatedPoolSequential",
    "resolved_backends",
    "spike_conv2d",
    "spike_linear",
    "norm_neuron",
    "conv_norm_neuron",
    "fire_into",
    "norm_neuron_into",
]

LAYOUTS = ("TB", "BT")
NEURON_BACKENDS = ("auto", "torch", "triton", "native", "cupy")
ATTENTION_BACKENDS = ("auto", "torch", "triton")


def check_layout(owner: str, layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"{owner}: layout must be 'TB' (sequences [T, B, ...]) or 'BT' ([B, T, ...]), got {layout!r}")
    return layout


def check_positive(owner: str, value: object, name: str) -> int:
    """``value`` if it is a positive int (not a bool), else a ValueError naming the network and argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def split_backend(owner: str, backend: str) -> tuple[str, str]:
    """(neuron backend, attention backend) for a network's single ``backend`` argument.

    The attention layers (TCJA, DTA) have Triton kernels only, so a network asked for ``"native"`` or
    ``"cupy"`` runs its neurons there and its attention on ``"auto"``: the same rule that
    ``SNNKERNELS_BACKEND`` follows (``snnkernels.backends``).
    """
    if backend not in NEURON_BACKENDS:
        raise ValueError(f"{owner}: backend must be one of {NEURON_BACKENDS}, got {backend!r}")
    return backend, backend if backend in ATTENTION_BACKENDS else "auto"


def network_options(net: nn.Module, T: object, layout: str, backend: str, t_name: str = "T") -> tuple[str, str]:
    """Check and set the options every network takes: ``net.T``, ``net.layout`` and ``net.backend``.

    Returns the (neuron backend, attention backend) pair of ``split_backend``. ``t_name`` is the argument's
    name in the constructor (DTA-SNN's official ``time_step``), for the error message.
    """
    owner = type(net).__name__
    net.T = check_positive(owner, T, t_name)
    net.layout = check_layout(owner, layout)
    net.backend = backend
    return split_backend(owner, backend)


def spike_conv2d(*args, backend: str, **kwargs) -> nn.Conv2d:
    """A conv whose input is a neuron's spikes: ``SpikeConv2d`` (input kept packed, 1 bit an element) under a
    fused ``backend``, the plain ``nn.Conv2d`` under ``"torch"``. Same parameters, initialisation and keys."""
    packing = packing_backend(backend)
    return nn.Conv2d(*args, **kwargs) if packing is None else SpikeConv2d(*args, backend=packing, **kwargs)


def spike_linear(*args, backend: str, **kwargs) -> nn.Linear:
    """``spike_conv2d`` for a linear layer: ``SpikeLinear`` or ``nn.Linear``."""
    packing = packing_backend(backend)
    return nn.Linear(*args, **kwargs) if packing is None else SpikeLinear(*args, backend=packing, **kwargs)


def norm_neuron(
    bn: nn.Module, neuron: nn.Module, x: torch.Tensor, return_packed: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """``neuron(bn(x))`` for x [T, B, C, ...] (``bn`` over the merged T * B samples, or an ``nn.BatchNorm3d`` on
    [B, C, T, H, W] as MA-SNN's): one ``bn_lif`` op where ``nn.bn_lif.bn_fusion_blocker`` finds nothing against
    it (the neuron's backend runs Triton on x), else the two modules' own calls. ``bn`` may be a
    ``StepBatchNorm`` (its ``bn``). ``return_packed``: ``(spikes, packed)`` as ``bn_neuron``'s."""
    if isinstance(bn, StepBatchNorm):
        bn = bn.bn
    return bn_neuron(bn, neuron, x, return_packed=return_packed)


def _spike_layer_first(module: nn.Module) -> nn.Module | None:
    """The spike layer that takes a neuron's packed copy (``nn.spike_layers.takes_packed``) which ``module``
    applies first to its input: the module itself, a ``StepContainer``'s or ``StepLayer``'s layer, or a
    ``SeqToANN``'s first layer; None otherwise, or where a container that would be bypassed has hooks."""
    if takes_packed(module):
        return module
    if module._forward_hooks or module._forward_pre_hooks:
        return None
    if isinstance(module, StepContainer):
        return _spike_layer_first(module.module)
    if isinstance(module, StepLayer):
        return _spike_layer_first(module.layer)
    if isinstance(module, SeqToANN) and len(module) > 0 and takes_packed(module[0]):
        return module[0]
    return None


def _with_packed(module: nn.Module, spikes: torch.Tensor, packed: torch.Tensor | None) -> torch.Tensor:
    """``module(spikes)``, its first spike layer (``_spike_layer_first``) given ``packed``: the same layers in the
    same order on the same values (each after the first on the merged T * B steps, as the containers apply it)."""
    if packed is None:
        return module(spikes)
    if takes_packed(module):
        return module(spikes, packed)
    if isinstance(module, StepContainer):
        return _with_packed(module.module, spikes, packed)
    if isinstance(module, StepLayer):
        y = _with_packed(module.layer, spikes, packed)
        return y if module.bn is None else module.bn(y)
    y = module[0](spikes, packed)  # a SeqToANN whose first layer takes it (multi-step input, [T, B, ...] out)
    for layer in module[1:]:
        y = _per_step(layer, y)
    return y


def fire_into(module: nn.Module, neuron: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(neuron(x))``, where ``module`` starts with a spike layer (``_spike_layer_first``), that layer given
    the packed copy the neuron wrote as it fired (docs/spike_pack.md "Packed by the neuron"): no pass of its own
    over the spikes. The same modules on the same values."""
    if _spike_layer_first(module) is None:
        return module(neuron(x))
    return _with_packed(module, *fire_packed(neuron, x))


def norm_neuron_into(module: nn.Module, bn: nn.Module, neuron: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(norm_neuron(bn, neuron, x))``, the packed copy handed over as ``fire_into`` hands it (written by
    ``bn_lif``'s kernel where the pair fuses)."""
    if _spike_layer_first(module) is None:
        return module(norm_neuron(bn, neuron, x))
    return _with_packed(module, *norm_neuron(bn, neuron, x, return_packed=True))


def conv_norm_neuron(conv_norm: nn.Sequential, neuron: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``neuron(conv_norm(x))`` for a ``SeqToANN(conv, BatchNorm)`` on x [T, B, ...]: the conv per step, then
    ``norm_neuron`` (BatchNorm -> neuron as one op where it fuses). The same modules, so the same keys."""
    conv, norm = conv_norm
    return norm_neuron(norm, neuron, _per_step(conv, x))


def to_time_major(owner: str, x: torch.Tensor, layout: str, T: int, rank: int, shape: str) -> torch.Tensor:
    """``x`` as a [T, B, ...] view after checking its rank and its time dimension against ``T``.

    ``shape`` spells the expected per-step shape (e.g. ``"2, H, W"``) for the error messages.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: the input must be a torch.Tensor, got {type(x).__name__}")
    expected = f"[T, B, {shape}]" if layout == "TB" else f"[B, T, {shape}]"
    if x.dim() != rank:
        raise ValueError(f"{owner}: the input must have shape {expected} (layout={layout!r}), got {list(x.shape)}")
    t_dim = 0 if layout == "TB" else 1
    if x.shape[t_dim] != T:
        hint = ""
        if x.shape[1 - t_dim] == T:
            other = LAYOUTS[1 - LAYOUTS.index(layout)]
            hint = f"; dim {1 - t_dim} has {T}: is the input in the other layout (layout={other!r})?"
        raise ValueError(
            f"{owner} was built for T = {T} time steps but the input has {x.shape[t_dim]} at dim {t_dim} "
            f"(expected {expected}, layout={layout!r}, got {list(x.shape)}){hint}"
        )
    return x if layout == "TB" else x.transpose(0, 1)


def from_time_major(y: torch.Tensor, layout: str) -> torch.Tensor:
    return y if layout == "TB" else y.transpose(0, 1)


def _per_step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless layer to every time step at once: [T, B, ...] -> [T * B, ...] -> [T, B, ...].

    The first two dimensions are merged whatever their order, so BatchNorm sees the T * B samples of
    both layouts alike (its statistics do not depend on the order).
    """
    y = module(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])


class SeqToANN(nn.Sequential):
    """SpikingJelly's ``SeqToANNContainer``: stateless layers applied to every step of [T, B, ...].

    An ``nn.Sequential``, so its layers' keys are ``0.<param>``, ``1.<param>``, ... as in TCJA-SNN's
    checkpoints (which use SpikingJelly's ``clock_driven`` container of the same form).
    """

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return _per_step(super().forward, x_seq)


class GatedPoolSequential(nn.Sequential):
    """An ``nn.Sequential`` over [T, B, ...] that applies a TCJA gate after the pooling that follows it.

    Where a TCJA / TLA / CLA module (``layout="TB"``) is directly followed by ``SeqToANN(MaxPool2d)`` or
    ``SeqToANN(AvgPool2d)`` and the attention runs on Triton for the input, the pair computes
    ``pool(x) * F`` with F = ``attention.gate(x)``: F > 0 is constant over (h, w), so this equals
    ``pool(attention(x))``, exactly for a max pool and to the rounding of the mean for an average pool
    (docs/tcja_dta.md "Gate after pooling, spike counts"). TCJA then costs one reduction sweep over x and a
    multiply on the pooled quarter, instead of two full passes. When a leaky neuron that the gated kernel runs
    (``nn.fused.fusion_blocker``) comes right before the TCJA, even that sweep goes: the neuron kernel counts its
    spikes per (t, b, c), which
    is TCJA's mean times H * W (``nn.fused.neuron_tcja_pool``). Keys are those of the plain
    ``nn.Sequential``. ``gate_after_pool=False`` turns both off. A ``SeqToANN(conv, BatchNorm)`` followed by a
    neuron that no TCJA follows runs its BatchNorm -> neuron pair through ``norm_neuron`` (one op where it fuses).
    """

    gate_after_pool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        i = 0
        while i < len(layers):
            if self._conv_norm_neuron(layers, i):
                x = conv_norm_neuron(layers[i], layers[i + 1], x)
                i += 2
                continue
            if i + 2 < len(layers) and self._neuron_gate_pool(*layers[i : i + 3], x):
                x = neuron_tcja_pool(layers[i], layers[i + 1], layers[i + 2], x)
                i += 3
                continue
            if i + 1 < len(layers) and self._gate_then_pool(layers[i], layers[i + 1], x):
                att, pool = layers[i], layers[i + 1]
                notify_fusion(att, pool, x, "pool")
                x = pool(x) * att.gate(x)[..., None, None].to(x.dtype)
                i += 2
                continue
            x = layers[i](x)
            i += 1
        return x

    @staticmethod
    def _conv_norm_neuron(layers: list[nn.Module], i: int) -> bool:
        """SeqToANN(conv, BatchNorm) -> neuron at i, the neuron not feeding a TCJA (whose fusion with the neuron
        needs the neuron's own call: ``_neuron_gate_pool``)."""
        return (
            i + 1 < len(layers)
            and isinstance(layers[i], SeqToANN)
            and len(layers[i]) == 2
            and isinstance(layers[i][1], (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
            and isinstance(layers[i + 1], SpikingNeuron)
            and not (i + 2 < len(layers) and isinstance(layers[i + 2], TCJAFamily))
        )

    def _gate_then_pool(self, att: nn.Module, pool: nn.Module, x: torch.Tensor) -> bool:
        return (
            self.gate_after_pool
            and isinstance(att, TCJAFamily)
            and att.layout == "TB"
            and isinstance(pool, SeqToANN)
            and len(pool) == 1
            and isinstance(pool[0], (nn.MaxPool2d, nn.AvgPool2d))
            and x.dim() == 5
            and SF.resolved_backend(att.backend, x, owner=type(att).__name__) == "triton"
        )

    def _neuron_gate_pool(self, neuron: nn.Module, att: nn.Module, pool: nn.Module, x: torch.Tensor) -> bool:
        """neuron -> TCJA -> pool, all on Triton: the neuron's spike counts give TCJA its mean for free."""
        return (
            isinstance(neuron, SpikingNeuron)
            and self._gate_then_pool(att, pool, x)
            and fusion_blocker(att, neuron, x) is None
        )


class StepContainer(nn.Module):
    """DTA-SNN's ``SeqToANNContainer``: one layer (key prefix ``module.``), or several in an
    ``nn.Sequential`` (``module.<i>.``), applied to every step of [T, B, ...]."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.module = layers[0] if len(layers) == 1 else nn.Sequential(*layers)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return _per_step(self.module, x_seq)


class StepBatchNorm(nn.Module):
    """DTA-SNN's ``tdBatchNorm``: one ``BatchNorm2d`` over the T * B samples of a sequence.

    The official module registers the same ``BatchNorm2d`` twice, as ``bn`` and inside ``seqbn``
    (``seqbn.module``), so its checkpoints hold every BN tensor under both keys; this one does the same, so
    they load with ``strict=True`` and its own state dicts load into the official model.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features)
        self.seqbn = StepContainer(self.bn)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return self.seqbn(x_seq)


class StepLayer(nn.Module):
    """DTA-SNN's ``tdLayer``: a stateless layer per time step (key prefix ``layer.module.``), then an
    optional ``StepBatchNorm`` (``bn.``)."""

    def __init__(self, layer: nn.Module, bn: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = StepContainer(layer)
        self.bn = bn

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        y = self.layer(x_seq)
        return y if self.bn is None else self.bn(y)


class SharedMaskDropout(nn.Module):
    """SpikingJelly's ``MultiStepDropout`` on [T, B, ...]: one Bernoulli mask per sample, shared by all T
    steps (a neuron dropped at one step stays dropped for the whole sequence), scaled by 1 / (1 - p).

    Stateless: every call draws a new mask, which is what the official code does with ``reset_net``
    between batches.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x_seq
        keep = torch.full(x_seq.shape[1:], 1.0 - self.p, dtype=x_seq.dtype, device=x_seq.device)
        return x_seq * (torch.bernoulli(keep) / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class VotingLayer(nn.Module):
    """TCJA-SNN's DVS128 read-out: [B, classes * voters] -> [B, classes], the mean of each group of
    ``voters`` consecutive outputs."""

    def __init__(self, voters: int) -> None:
        super().__init__()
        self.voters = int(voters)
        self.voting = nn.AvgPool1d(self.voters, self.voters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.voting(x.unsqueeze(1)).squeeze(1)

    def extra_repr(self) -> str:
        return f"voters={self.voters}"


def _staa_backend(module: nn.Module, x: torch.Tensor) -> str:
    """STAA-LIF on "triton": the GC pooling sweep and the step kernels, or the eager loop for per-pixel M, N."""
    if SF.resolved_backend(module.backend, x, owner="STAALIFNode") != "triton":
        return "torch"
    return "triton" if module.coefficient_shape != "CHW" else "triton (GC pooling; loop eager)"


def resolved_backends(model: nn.Module, *inputs: torch.Tensor) -> dict[str, str]:
    """The implementation each snnkernels layer of ``model`` runs on these inputs, by module name.

    Runs one forward without gradients (in eval mode, then restores the mode) and asks the backend
    resolver with each layer's own input tensor: e.g. ``{"LIF": "native", "encoding": "torch", ...}``.
    """
    from ..nn.attention import CLA, DTA, TCJA, TLA, TNA, TXA
    from ..nn.fused import observe_fusion, observer_hook
    from ..nn.ma_snn import MultiDimensionalAttention
    from ..nn.staa import STAALIFNode

    attention = (TCJA, TLA, CLA, TXA, TNA, DTA, MultiDimensionalAttention)
    found: dict[str, str] = {}
    hooks = []
    names = {module: name for name, module in model.named_modules()}

    def fused(att: nn.Module, partner: nn.Module, x: torch.Tensor, how: str) -> None:
        if how == "pool":
            found.setdefault(names.get(att) or type(att).__name__, "triton (gate applied after the pool)")
            return
        if how == "neuron-dta":
            found.setdefault(names.get(partner) or type(partner).__name__, "triton (forms the DTA output as it fires)")
            found.setdefault(names.get(att) or type(att).__name__, "triton (output formed in the neuron's loop)")
            return
        if how == "neuron-pool":
            found.setdefault(names.get(partner) or type(partner).__name__, "triton (counts its spikes for the TCJA)")
            found.setdefault(
                names.get(att) or type(att).__name__,
                "triton (mean from the neuron's spike counts; gate applied after the pool)",
            )
            return
        found.setdefault(names.get(att) or type(att).__name__, "triton (gates applied in the neuron's loop)")
        found.setdefault(names.get(partner) or type(partner).__name__, "triton (gated by the attention)")

    for name, module in model.named_modules():
        if isinstance(module, SpikingNeuron):
            resolve = lambda m, x: SF.resolved_backend(m.backend, x)  # noqa: E731
        elif isinstance(module, STAALIFNode):
            resolve = _staa_backend
        elif isinstance(module, attention):
            resolve = lambda m, x: SF.resolved_backend(m.backend, x, owner=type(m).__name__)  # noqa: E731
        else:
            continue

        def hook(m, args, name=name, resolve=resolve):
            found.setdefault(name or type(m).__name__, resolve(m, args[0]))

        hooks.append(module.register_forward_pre_hook(observer_hook(hook)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), observe_fusion(fused):
            model(*inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found
