"""BatchNorm followed by a leaky neuron as one op (``functional.bn_lif``, docs/bn_lif.md).

``BNLIF`` holds BatchNorm's parameters and buffers under ``nn.BatchNorm2d``'s names (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``), so a BatchNorm's state dict loads into it, and the
neuron as the child ``neuron``. ``bn_neuron(bn, neuron, x)`` runs an existing ``nn.BatchNorm1d`` / ``2d`` (or
``BNLIF``) and neuron pair the same way, each keeping its own state dict, and falls back to the modules' own
calls where the pair cannot fuse (``bn_fusion_blocker`` says why), so the zoo's Conv -> BatchNorm -> neuron chains
can call it unconditionally. Both follow ``nn.BatchNorm``'s rules for the running statistics (``momentum=None``:
cumulative average over ``num_batches_tracked``; ``track_running_stats=False``: batch statistics in eval mode too).
A ``BNLIF``'s neuron records its spike counts (``record_spike_counts``, counted from the spikes) but its own
forward hooks do not run: the fused call never calls it.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import functional as SF
from ..backends import check_backend_name
from ..surrogate import coerce_surrogate
from .neuron import LIFNode, SpikingNeuron
from .spike_layers import fire_packed

__all__ = ["BNLIF", "bn_neuron", "bn_fusion_blocker"]


def _neuron_arguments(neuron: nn.Module) -> dict:
    """``functional.bn_lif``'s neuron arguments for ``neuron``; ValueError naming why it cannot run there."""
    if not isinstance(neuron, SpikingNeuron):
        raise ValueError(f"bn_lif runs snnkernels' leaky neurons, got {type(neuron).__name__}")
    if neuron.step_mode != "m" or neuron.stateful:
        raise ValueError("bn_lif runs a stateless multi-step neuron (step_mode='m', stateful=False)")
    settings = neuron.leaky_settings()
    settings["neuron_bias"] = settings.pop("bias")  # bn_lif's "bias" is BatchNorm's
    settings["surrogate_function"] = coerce_surrogate(settings["surrogate_function"])
    return dict(settings, v_init_value=neuron.v_init_value)


def bn_fusion_blocker(bn: nn.Module, neuron: nn.Module, x: torch.Tensor, backend: str | None = None) -> str | None:
    """Why ``bn_neuron`` runs ``neuron(bn(x))`` unfused on x, or None when it runs ``bn_lif``'s kernels."""
    # any of these normalises per channel over every other dim: over T x B x space however the caller arranged them
    # (the zoo's BatchNorm2d on [T * B, C, H, W], MA-SNN's BatchNorm3d on [B, C, T, H, W]); SyncBatchNorm is not
    # one (its statistics span processes)
    if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, BNLIF)):
        return f"{type(bn).__name__} is not an nn.BatchNorm1d / 2d / 3d (per-channel statistics of this process)"
    try:
        _neuron_arguments(neuron)
    except ValueError as reason:
        return str(reason)
    if bn._forward_hooks or bn._forward_pre_hooks or neuron._forward_hooks or neuron._forward_pre_hooks:
        return "a module has forward hooks, which need BatchNorm's output or the neuron's call"
    if neuron.record_spike_counts:
        return "the neuron records spike counts (firing statistics), which its own call does"
    if not isinstance(x, torch.Tensor) or x.dim() < 3 or x.numel() == 0:
        return "the input is not a non-empty [T, B, C, ...] tensor"
    backend = neuron.backend if backend is None else backend
    if backend not in SF.BN_LIF_BACKENDS:
        return f"bn_lif has no {backend!r} kernels"
    if SF.resolved_backend(backend, x, owner="bn_lif") == "torch":
        return f"bn_lif runs on 'torch' here (backend={backend!r}, {x.device.type} tensor)"
    return None


def bn_neuron(
    bn: nn.Module, neuron: nn.Module, x: torch.Tensor, backend: str | None = None, return_packed: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """``neuron(bn(x))`` for x [T, B, C, ...] with ``bn`` over the merged [T * B, C, ...] samples: one op
    (``functional.bn_lif``) when ``bn_fusion_blocker`` finds nothing against it, else the two modules' own
    calls (the same computation, unfused).

    Args:
        bn (nn.Module): an ``nn.BatchNorm1d`` / ``2d`` / ``3d`` or ``BNLIF`` (its parameters, buffers and
            ``training``, ``momentum``, ``eps``, ``track_running_stats``); its statistics are per channel
            (dim 2 of x) over T x B x the spatial positions.
        neuron (nn.Module): a stateless multi-step snnkernels neuron (``LIFNode``, ``ParametricLIFNode``,
            ``LeakyNode``, ...); learnable coefficients receive their gradients.
        x (Tensor): [T, B, C, *spatial].
        backend (str, Optional): ``'auto'``, ``'torch'``, ``'triton'`` or ``'native'``. Default: None (the neuron's).
        return_packed (bool, Optional): return ``(spikes, packed)``, the spikes' packed copy for the spike layer
            that takes them (docs/spike_pack.md "Packed by the neuron"): written by ``bn_lif``'s kernel as it
            fires, or the neuron's ``fire_packed`` where the pair runs unfused (None where that gives none).
            Default: False
    """
    if bn_fusion_blocker(bn, neuron, x, backend) is not None:
        if isinstance(bn, BNLIF):  # BNLIF has no unfused forward of its own: the same math on the reference
            return _bn_lif_call(bn, neuron, x, "torch", return_packed)
        if return_packed:
            return fire_packed(neuron, _unfused_norm(bn, x))
        return neuron(_unfused_norm(bn, x))
    return _bn_lif_call(bn, neuron, x, neuron.backend if backend is None else backend, return_packed)


def _unfused_norm(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``bn`` on x [T, B, C, ...] as its own call takes it: [T * B, C, ...], or a BatchNorm3d on [B, C, T, H, W]."""
    if isinstance(bn, nn.BatchNorm3d) and x.dim() == 5:
        return bn(x.permute(1, 2, 0, 3, 4)).permute(2, 0, 1, 3, 4)
    return bn(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def _bn_lif_call(bn: nn.Module, neuron: nn.Module, x: torch.Tensor, backend: str, return_packed: bool = False):
    # nn.BatchNorm's forward, line for line: the update factor and which statistics normalise
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep = not bn.training or bn.track_running_stats
    return SF.bn_lif(
        x,
        bn.running_mean if keep else None,
        bn.running_var if keep else None,
        bn.weight,
        bn.bias,
        training=batch_stats,
        momentum=factor,
        eps=bn.eps,
        backend=backend,
        return_packed=return_packed,
        **_neuron_arguments(neuron),
    )


class BNLIF(nn.Module):
    """BatchNorm over the T * B samples of [T, B, C, ...] and a leaky neuron, fused (``functional.bn_lif``).

    Args:
        num_features (int): C.
        neuron (nn.Module, Optional): a stateless multi-step snnkernels neuron (the child ``neuron``). Default:
            ``LIFNode(step_mode="m", stateful=False)``.
        eps (float): as ``nn.BatchNorm2d``. Default: 1e-5.
        momentum (float, Optional): as ``nn.BatchNorm2d`` (None: cumulative average). Default: 0.1.
        affine (bool): learnable ``weight`` and ``bias``. Default: True.
        track_running_stats (bool): keep ``running_mean`` / ``running_var`` / ``num_batches_tracked``.
            Default: True.
        backend (str): ``'auto'``, ``'torch'``, ``'triton'`` or ``'native'``. Default: ``'auto'``.
    """

    def __init__(
        self,
        num_features: int,
        neuron: nn.Module | None = None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.backend = check_backend_name(backend, type(self).__name__, SF.BN_LIF_BACKENDS)
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.neuron = LIFNode(step_mode="m", stateful=False) if neuron is None else neuron
        _neuron_arguments(self.neuron)  # refuse a neuron bn_lif cannot run now, not at the first forward

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 3 or x.shape[2] != self.num_features:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"BNLIF({self.num_features}) takes [T, B, {self.num_features}, ...], got {shape}")
        spikes = _bn_lif_call(self, self.neuron, x, self.backend)
        if self.neuron.record_spike_counts:  # firing statistics, from the spikes (a second pass)
            self.neuron.spike_counts = spikes.detach().reshape(spikes.shape[0], -1).sum(1, dtype=torch.int64)
        return spikes

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}, backend={self.backend!r}"
        )
