"""MA-SNN attention modules (docs/ma_snn.md): parameter ownership, layout and shape checks only.

The math is in ``snnkernels.reference.ma_snn``. ``MultiDimensionalAttention`` runs through
``snnkernels.functional.multi_dimensional_attention``: ``backend`` ``"auto"`` (fused Triton sweeps on CUDA,
the eager reference elsewhere), ``"torch"`` or ``"triton"``; so does ``TCSALIFNode`` (``functional.tcsa_lif_paper``).
The other modules are eager only (``"auto"`` / ``"torch"``); ``"native"`` and ``"cupy"`` raise
``BackendUnavailableError`` everywhere.

- ``MultiDimensionalAttention``: the RELEASED attention (BICLab/MA-SNN ``TCSA`` / ``TCA`` / ``CSA`` / ``TSA``
  / ``TA`` / ``CA`` / ``SA``, SpikingJelly ``MultiDimensionalAttention``), any subset of T, C, S, then ReLU.
- ``TemporalAttentionFC``: the released TA of the fully connected layers (official ``TA(..., fc=True)``), ReLU
  included.
- ``TemporalWiseAttention``: SpikingJelly's TA (``g_t * X``, no ReLU), its keys and constructor.
- ``TCSALIFNode``: the PAPER's in-loop TCSA-LIF (Eq. 14), not in the released code; INFERRED parameters.
- ``AttResBlock``: the released Att-Res-SNN-1 residual block (``Att_Res_SNN/models/resnet_2.py``
  ``BasicBlock``), CSA on the residual branch before the add.

Each module owns its parameters under the official names and shapes, so
``module.load_state_dict(official_module.state_dict())`` works unchanged. Layout: the library's
[T, B, C, H, W] by default; ``layout="BT"`` takes and returns [B, T, C, H, W] like the MA-SNN code. T and C
are fixed at construction; an input whose T or C differs raises a ``ValueError``.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import functional as SF
from ..backends import BACKENDS as BACKEND_NAMES
from ..backends import check_backend_name
from ..reference.ma_snn import (
    MLPWeights,
    check_dims,
    multi_dimensional_attention_reference,
    time_attention_reference,
)
from ..surrogate import Rectangle, Surrogate, coerce_surrogate
from .attention_inputs import LAYOUTS, check_dtype, check_t_c, empty_output, from_tb, positive_int, to_tb
from .bn_lif import bn_fusion_blocker, bn_neuron
from .neuron import AttResLIFNode
from .spike_layers import SpikeConv2d, fire_packed, packing_backend, takes_packed

__all__ = ["MultiDimensionalAttention", "TemporalAttentionFC", "TemporalWiseAttention", "TCSALIFNode", "AttResBlock"]

BACKENDS = ("auto", "torch")
KERNEL_SIZES = (3, 7)


def _check_options(owner: str, layout: str, backend: str, available: tuple[str, ...] = BACKENDS) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"{owner}: layout must be 'TB' (input [T, B, ...]) or 'BT' ([B, T, ...]), got {layout!r}")
    check_backend_name(backend, owner, available)


# SpikingJelly's pooling submodules, per convolution type: adaptive pools to one element (no parameters)
_POOLS = {
    nn.Conv3d: (nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d),
    nn.Conv1d: (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d),
}


class _SharedMLP(nn.Module):
    """One attention's shared MLP under the official name ``sharedMLP`` (entries 0 and 2 hold weights).

    1x1 convolutions as in the official code (``nn.Conv3d``; ``nn.Conv1d`` for the FC layers' TA), so the
    weights have the official shapes [n // ratio, n, 1, ...] and the official initialisation. ``avg_pool`` /
    ``max_pool`` are SpikingJelly's pooling submodules and ``forward`` its gate on the batch-first layout
    (docs/ma_snn.md "SpikingJelly's submodules"); the attention's own forward does not call them.
    """

    def __init__(self, planes: int, ratio: int, conv: type[nn.Module] = nn.Conv3d, axis: int = 1) -> None:
        super().__init__()
        self.axis = axis  # the gated axis of the batch-first input: 1 (T) or 2 (C)
        avg_pool, max_pool = _POOLS[conv]
        self.avg_pool = avg_pool(1)
        self.max_pool = max_pool(1)
        self.sharedMLP = nn.Sequential(
            conv(planes, planes // ratio, 1, bias=False), nn.ReLU(), conv(planes // ratio, planes, 1, bias=False)
        )

    def matrices(self) -> MLPWeights:
        """(w0 [hidden, n], w1 [n, hidden]): the 1x1 conv weights without their trailing ones (views)."""
        return self.sharedMLP[0].weight.flatten(1), self.sharedMLP[2].weight.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gate of batch-first ``x`` ([B, T, C, H, W], or [B, T, L] for the FC layers' TA), shaped to
        broadcast against it: [B, T, 1, 1, 1] for TA, [B, 1, C, 1, 1] for CA."""
        moved = x.transpose(1, self.axis)  # the gated axis becomes the pools' channel axis
        mlp = self.sharedMLP
        return torch.sigmoid(mlp(self.avg_pool(moved)) + mlp(self.max_pool(moved))).transpose(1, self.axis)


class _SpatialConv(nn.Module):
    """SA's 2 -> 1 conv under the official name ``conv`` (input channels [mean; max], no bias); ``forward`` is
    SpikingJelly's SA gate on the batch-first layout (not called by the attention's own forward)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The map of batch-first ``x`` [B, T, C, H, W] as [B, 1, 1, H, W]: pooled over (T, C)."""
        planes = x.flatten(1, 2)
        pooled = torch.cat([planes.mean(dim=1, keepdim=True), planes.max(dim=1, keepdim=True).values], dim=1)
        return torch.sigmoid(self.conv(pooled)).unsqueeze(1)


_FLAGS = ("use_temporal", "use_channel", "use_spatial")


def _flag(value: object, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"MultiDimensionalAttention: {name} must be a bool, got {value!r}")
    return value


def _dims_from_flags(
    dims: object, use_temporal: object = None, use_channel: object = None, use_spatial: object = None
) -> str:
    """The chain of ``MultiDimensionalAttention`` from our ``dims`` and SpikingJelly's flags (docs/ma_snn.md
    "SpikingJelly's flags"): a flag left None counts as True, as SpikingJelly's default; given both, they must
    name the same chain."""
    if isinstance(dims, bool):  # SpikingJelly's flags passed positionally land here
        raise TypeError(
            "MultiDimensionalAttention: dims takes a string such as 'TCS', got a bool; pass SpikingJelly's "
            "use_temporal / use_channel / use_spatial by keyword"
        )
    flags = [_flag(value, name) for value, name in zip((use_temporal, use_channel, use_spatial), _FLAGS, strict=True)]
    if all(f is None for f in flags):
        return check_dims("TCS" if dims is None else dims)
    if not any(f is None or f for f in flags):
        raise ValueError(
            "MultiDimensionalAttention: at least one of use_temporal, use_channel and use_spatial must be True"
        )
    chain = "".join(key for key, f in zip("TCS", flags, strict=True) if f is None or f)
    if dims is not None and dims != chain:
        given = ", ".join(f"{n}={f}" for n, f in zip(_FLAGS, flags, strict=True) if f is not None)
        raise ValueError(
            f"MultiDimensionalAttention: dims={dims!r} and {given} name different chains "
            f"({dims!r} against {chain!r}); pass one or the other"
        )
    return chain


def _reduction(planes: int | None, reduction: object, name: str, planes_name: str) -> int:
    reduction = positive_int(reduction, name)
    if planes is not None and planes < reduction:
        # the official MLP would have planes // reduction = 0 hidden units
        raise ValueError(
            f"{name} ({reduction}) cannot be greater than {planes_name} ({planes}): the shared MLP's "
            f"hidden layer would have {planes_name} // {name} = 0 units"
        )
    return reduction


class _Gates(nn.Module):
    """Builds ``ta`` / ``ca`` / ``sa`` for the gates in ``dims`` and hands them to the references."""

    def _build(
        self,
        owner: str,
        T: int | None,
        C: int,
        reduction_t: int,
        reduction_c: int,
        kernel_size: int,
        dims: str,
        layout: str,
        backend: str,
        available: tuple[str, ...] = BACKENDS,
    ) -> None:
        _check_options(owner, layout, backend, available)
        self.dims = check_dims(dims)
        if T is None and "T" in self.dims:
            raise ValueError(f"{owner}: T is required when dims contains 'T' (it is the MLP's width)")
        self.T = None if T is None else positive_int(T, "T")
        self.C = positive_int(C, "C")
        self.reduction_t = _reduction(self.T if "T" in self.dims else None, reduction_t, "reduction_t", "T")
        self.reduction_c = _reduction(self.C if "C" in self.dims else None, reduction_c, "reduction_c", "C")
        if type(kernel_size) is not int or kernel_size not in KERNEL_SIZES:
            raise ValueError(
                f"{owner}: kernel_size must be 3 or 7 (as the official SpatialAttention asserts), got {kernel_size!r}"
            )
        self.kernel_size = kernel_size
        self.layout = layout
        self.backend = backend
        # Created in SpikingJelly's order (ta, ca, sa), so one seed gives its initial weights. BICLab's TCSA /
        # TCA create ca before ta: their checkpoints load (by name), their seeded init differs. A gate not in
        # dims is None, as in SpikingJelly.
        self.ta = _SharedMLP(self.T, self.reduction_t) if "T" in self.dims else None
        self.ca = _SharedMLP(self.C, self.reduction_c, axis=2) if "C" in self.dims else None
        self.sa = _SpatialConv(kernel_size) if "S" in self.dims else None

    def weights(self) -> tuple[MLPWeights | None, MLPWeights | None, torch.Tensor | None]:
        """(ta, ca, sa) as the references take them; None for a gate not in ``dims``."""
        return (
            None if self.ta is None else self.ta.matrices(),
            None if self.ca is None else self.ca.matrices(),
            None if self.sa is None else self.sa.conv.weight,
        )

    def checked_input(self, x_seq: torch.Tensor) -> torch.Tensor:
        """``x_seq`` as a [T, B, ...] view, its T and C checked against the constructor's."""
        owner = type(self).__name__
        x = to_tb(owner, x_seq, self.layout)
        # without a TA the gates do not depend on T: any T runs (the [B, T] order is still checked by C)
        check_t_c(owner, x, self.T if self.T is not None else x.shape[0], self.C, self.layout)
        return x

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, C={self.C}, reduction_t={self.reduction_t}, reduction_c={self.reduction_c}, "
            f"kernel_size={self.kernel_size}, dims={self.dims!r}, layout={self.layout!r}, backend={self.backend!r}"
        )


class MultiDimensionalAttention(_Gates):
    """MA-SNN's released multi-dimensional attention: ``Y = relu(g_s * g_c * g_t * X)``, on the whole sequence.

    Gates, applied in the order T, C, S, each on the previous one's output (docs/ma_snn.md "Released attention"):

    - TA ``g_t`` [B, T]: mean and max over (C, H, W), shared MLP over T (T -> T // reduction_t -> T), sigmoid;
    - CA ``g_c`` [B, C]: mean and max over (T, H, W), shared MLP over C, sigmoid: one gate per (b, c), all t;
    - SA ``g_s`` [B, H, W]: mean and max over (T, C), k x k conv of [mean; max] (padding (k - 1) / 2), sigmoid.

    The MLPs and the conv have no bias. ``dims`` picks the chain: ``"TCS"`` is BICLab's ``TCSA`` and
    SpikingJelly's ``MultiDimensionalAttention``; ``"TC"``, ``"CS"``, ``"TS"``, ``"T"``, ``"C"``, ``"S"`` are
    BICLab's ``TCA``, ``CSA``, ``TSA``, ``TA``, ``CA``, ``SA``. Only the gates in ``dims`` own weights.

    State-dict keys (official names and shapes): ``ta.sharedMLP.0.weight`` [T // reduction_t, T, 1, 1, 1],
    ``ta.sharedMLP.2.weight`` [T, T // reduction_t, 1, 1, 1], ``ca.sharedMLP.0.weight`` [C // reduction_c, C,
    1, 1, 1], ``ca.sharedMLP.2.weight`` [C, C // reduction_c, 1, 1, 1], ``sa.conv.weight`` [1, 2, k, k].
    Same constructor, flags and creation order as SpikingJelly's ``MultiDimensionalAttention``; BICLab's
    classes take ``(timeWindows, channels, stride, c_ratio, t_ratio)`` and fix k = 3.

    SpikingJelly's submodules answer as there: ``ta`` / ``ca`` / ``sa`` (None for a gate not used), their
    ``sharedMLP`` / ``conv``, the parameter-free pools ``ta.avg_pool`` / ``ta.max_pool`` / ``ca.avg_pool`` /
    ``ca.max_pool`` on the batch-first layout, and each gate as ``ta(x)`` / ``ca(x)`` / ``sa(x)``.

    Args:
        T (int, Optional): time steps of the input. May be None when ``dims`` has no ``'T'`` (the gates then
            do not depend on T and any T runs).
        C (int): channels of the input.
        reduction_t (int): TA's MLP reduction, at most T. Default: ``16`` (SpikingJelly; the MA-SNN configs
            use 5 for DVS Gesture and 2 for Gait and CIFAR10-DVS).
        reduction_c (int): CA's MLP reduction, at most C. Default: ``16`` (MA-SNN configs: 8).
        kernel_size (int): SA's conv size, 3 or 7. Default: ``3`` (all released code; the paper says 7).
        dims (str, Optional): one of ``"T"``, ``"C"``, ``"S"``, ``"TC"``, ``"TS"``, ``"CS"``, ``"TCS"``.
            Default: ``None`` (``"TCS"``, or the chain the flags name).
        use_temporal (bool, Optional): SpikingJelly's flag for TA (keyword only). Default: ``None`` (True).
        use_channel (bool, Optional): SpikingJelly's flag for CA (keyword only). Default: ``None`` (True).
        use_spatial (bool, Optional): SpikingJelly's flag for SA (keyword only). Default: ``None`` (True).
            The flags give the chain of the gates they leave on (all False: ``ValueError``, as in
            SpikingJelly); with ``dims`` also given, both must name the same chain (``ValueError`` otherwise).
        layout (str): ``"TB"`` for [T, B, C, H, W] input and output, ``"BT"`` for [B, T, C, H, W].
            Default: ``"TB"``.
        backend (str): ``"auto"`` (fused Triton sweeps on CUDA, else the eager reference), ``"torch"`` or
            ``"triton"``. Default: ``"auto"``.
    """

    def __init__(
        self,
        T: int | None,
        C: int,
        reduction_t: int = 16,
        reduction_c: int = 16,
        kernel_size: int = 3,
        dims: str | None = None,
        *,
        use_temporal: bool | None = None,
        use_channel: bool | None = None,
        use_spatial: bool | None = None,
        layout: str = "TB",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        dims = _dims_from_flags(dims, use_temporal, use_channel, use_spatial)
        self._build(
            "MultiDimensionalAttention",
            T,
            C,
            reduction_t,
            reduction_c,
            kernel_size,
            dims,
            layout,
            backend,
            ("auto", "torch", "triton"),
        )

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = self.checked_input(x_seq)
        check_dtype("MultiDimensionalAttention", self, x)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        return from_tb(SF.multi_dimensional_attention(x, self.dims, *self.weights(), backend=self.backend), self.layout)


def _time_major_input(owner: str, x_seq: object, rank: int, T: int, layout: str) -> torch.Tensor:
    """``x_seq`` as [T, B, ...] (a view) after checking its rank and T."""
    if not isinstance(x_seq, torch.Tensor):
        raise TypeError(f"{owner}: input must be a torch.Tensor, got {type(x_seq).__name__}")
    if x_seq.dim() != rank:
        rest = ", L" if rank == 3 else ", C, H, W"
        expected = f"[T, B{rest}]" if layout == "TB" else f"[B, T{rest}]"
        raise ValueError(f"{owner}: input must have shape {expected} (layout={layout!r}), got {list(x_seq.shape)}")
    x = x_seq if layout == "TB" else x_seq.transpose(0, 1)
    if x.shape[0] != T:
        raise ValueError(
            f"{owner} was built for T = {T} time steps but the input has {x.shape[0]} at dim "
            f"{0 if layout == 'TB' else 1} (layout={layout!r}, shape {list(x_seq.shape)})"
        )
    return x


class TemporalAttentionFC(nn.Module):
    """MA-SNN's released TA of the fully connected layers: ``Y = relu(g_t * X)`` on [T, B, L].

    docs/ma_snn.md "Released attention".

    ``g_t`` [B, T] = sigmoid(MLP(mean_L X) + MLP(max_L X)), shared MLP T -> T // reduction_t -> T without
    bias. Parameters as the official ``TA(T, channels, t_ratio=reduction_t, fc=True)`` (the attention of
    ``AttLIF``): ``ta.sharedMLP.0.weight`` [T // reduction_t, T, 1] and ``ta.sharedMLP.2.weight``
    [T, T // reduction_t, 1] (``nn.Conv1d``). The ReLU is MA-SNN's: SpikingJelly's
    ``TemporalWiseAttention(dimension=2)`` has none (``g_t * X``, negative values kept) and keeps its
    ``nn.Linear`` weights under other keys; ``TemporalWiseAttention`` here is that form.

    Args:
        T (int): time steps of the input.
        reduction_t (int): the MLP reduction, at most T. Default: ``16``.
        layout (str): ``"TB"`` for [T, B, L], ``"BT"`` for [B, T, L] (official). Default: ``"TB"``.
        backend (str): ``"auto"`` or ``"torch"``. Default: ``"auto"``.
    """

    def __init__(self, T: int, reduction_t: int = 16, *, layout: str = "TB", backend: str = "auto") -> None:
        super().__init__()
        _check_options("TemporalAttentionFC", layout, backend)
        self.T = positive_int(T, "T")
        self.reduction_t = _reduction(self.T, reduction_t, "reduction_t", "T")
        self.layout = layout
        self.backend = backend
        self.ta = _SharedMLP(self.T, self.reduction_t, nn.Conv1d)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = _time_major_input("TemporalAttentionFC", x_seq, 3, self.T, self.layout)
        check_dtype("TemporalAttentionFC", self, x)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        y = multi_dimensional_attention_reference(x, "T", ta=self.ta.matrices())
        return from_tb(y, self.layout)

    def extra_repr(self) -> str:
        return f"T={self.T}, reduction_t={self.reduction_t}, layout={self.layout!r}, backend={self.backend!r}"


class TemporalWiseAttention(nn.Module):
    """SpikingJelly's ``TemporalWiseAttention`` (TA-SNN, Yao et al. 2021): ``Y = g_t * X``, no ReLU.

    ``g_t`` [B, T] = sigmoid(MLP(mean X[t, b]) + MLP(max X[t, b])), pooled over everything after (T, B), with
    the shared MLP T -> T // reduction -> T (``nn.Linear``, no bias). Unlike ``TemporalAttentionFC`` (MA-SNN's
    TA) the output is not rectified. Same constructor, keys and shapes as SpikingJelly's, so its state dicts
    load: ``sharedMLP.0.weight`` [T // reduction, T], ``sharedMLP.2.weight`` [T, T // reduction]; one seed
    gives its initial weights. ``avg_pool`` / ``max_pool`` are its parameter-free pooling submodules.

    Args:
        T (int): time steps of the input.
        reduction (int): the MLP reduction, at most T. Default: ``16``.
        dimension (int): ``4`` for [T, B, C, H, W] input, ``2`` for [T, B, L]. Default: ``4``.
        layout (str): ``"TB"`` ([T, B, ...], SpikingJelly's) or ``"BT"``. Default: ``"TB"``.
        backend (str): ``"auto"`` or ``"torch"`` (eager). Default: ``"auto"``.
    """

    step_mode = "m"  # SpikingJelly's multi-step module

    def __init__(
        self, T: int, reduction: int = 16, dimension: int = 4, *, layout: str = "TB", backend: str = "auto"
    ) -> None:
        super().__init__()
        _check_options("TemporalWiseAttention", layout, backend)
        if dimension not in (2, 4) or isinstance(dimension, bool):
            raise ValueError(
                f"TemporalWiseAttention: dimension must be 4 ([T, B, C, H, W]) or 2 ([T, B, L]), got {dimension!r}"
            )
        self.T = positive_int(T, "T")
        self.reduction = _reduction(self.T, reduction, "reduction", "T")
        self.dimension = dimension
        self.layout = layout
        self.backend = backend
        avg_pool, max_pool = _POOLS[nn.Conv3d if dimension == 4 else nn.Conv1d]
        self.avg_pool = avg_pool(1)
        self.max_pool = max_pool(1)
        self.sharedMLP = nn.Sequential(
            nn.Linear(T, T // self.reduction, bias=False), nn.ReLU(), nn.Linear(T // self.reduction, T, bias=False)
        )

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = _time_major_input("TemporalWiseAttention", x_seq, self.dimension + 1, self.T, self.layout)
        check_dtype("TemporalWiseAttention", self, x)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        return from_tb(time_attention_reference(x, self.sharedMLP[0].weight, self.sharedMLP[2].weight), self.layout)

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, reduction={self.reduction}, dimension={self.dimension}, layout={self.layout!r}, "
            f"backend={self.backend!r}"
        )


class TCSALIFNode(_Gates):
    """The PAPER's TCSA-LIF neuron layer (MA-SNN Eq. 14): NOT the released code; INFERRED parameters.

    docs/ma_snn.md "Paper variant: TCSA-LIF".

    TA on the whole input sequence (as released), then per time step CA and SA on the integrated membrane
    potential V_t, CA pooling over (H, W) only and SA over C only, then fire and reset::

        V_t = H_{t-1} + (g_t X)[t];  U_t = g_s'(g_c'(V_t) V_t) g_c'(V_t) V_t
        S_t = Heaviside(U_t - u_th);  H_t = v_reset S_t + beta U_t (1 - S_t)

    Returns the spikes S [T, B, C, H, W]. The paper gives none of beta, u_th, v_reset; the defaults are the
    released code's (0.3, 0.3, 0) and may not be the authors'. Weights under the same names and shapes as
    ``MultiDimensionalAttention`` (``ta``, ``ca``, ``sa``), so released weights load for a comparison; no
    official checkpoint of this variant exists. Stateless: every call starts from H_0 = 0.

    Args:
        T (int): time steps of the input.
        C (int): channels of the input.
        reduction_t (int): TA's MLP reduction, at most T. Default: ``16``.
        reduction_c (int): CA's MLP reduction, at most C. Default: ``16``.
        kernel_size (int): SA's conv size, 3 or 7. Default: ``7`` (the paper's value).
        dims (str): the gates, one of ``"T"``, ``"C"``, ``"S"``, ``"TC"``, ``"TS"``, ``"CS"``, ``"TCS"``.
            Default: ``"TCS"``.
        beta (float): membrane decay. Default: ``0.3`` (INFERRED).
        u_th (float): firing threshold. Default: ``0.3`` (INFERRED).
        v_reset (float): potential after a spike. Default: ``0.0`` (INFERRED).
        surrogate_function (Surrogate): spike derivative. Default: ``Rectangle(0.5)`` (released, DVS Gesture).
        detach_reset (bool): no gradient through the reset. Default: ``False``.
        layout (str): ``"TB"`` or ``"BT"``. Default: ``"TB"``.
        backend (str): ``"auto"``, ``"torch"`` or ``"triton"`` (every gate's statistics on the fused sweeps:
            TA's once, CA's and SA's per step; each step's gating, fire and reset one kernel each way).
            Default: ``"auto"``.
    """

    def __init__(
        self,
        T: int,
        C: int,
        reduction_t: int = 16,
        reduction_c: int = 16,
        kernel_size: int = 7,
        dims: str = "TCS",
        *,
        beta: float = 0.3,
        u_th: float = 0.3,
        v_reset: float = 0.0,
        # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
        surrogate_function: Surrogate = Rectangle(0.5),  # noqa: B008
        detach_reset: bool = False,
        layout: str = "TB",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._build(
            "TCSALIFNode",
            T,
            C,
            reduction_t,
            reduction_c,
            kernel_size,
            dims,
            layout,
            backend,
            ("auto", "torch", "triton"),
        )
        self.beta = float(beta)
        self.u_th = float(u_th)
        self.v_reset = float(v_reset)
        self.surrogate_function = coerce_surrogate(surrogate_function)
        self.detach_reset = bool(detach_reset)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = self.checked_input(x_seq)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        neuron = dict(
            beta=self.beta,
            u_th=self.u_th,
            v_reset=self.v_reset,
            surrogate_function=self.surrogate_function,
            detach_reset=self.detach_reset,
        )
        return from_tb(SF.tcsa_lif_paper(x, self.dims, *self.weights(), **neuron, backend=self.backend), self.layout)

    def extra_repr(self) -> str:
        return (
            super().extra_repr() + f", beta={self.beta}, u_th={self.u_th}, v_reset={self.v_reset}, "
            f"surrogate_function={self.surrogate_function}, detach_reset={self.detach_reset}"
        )


class StepConv2d(nn.Conv2d):
    """A 2-D convolution applied to every time step of [T, B, C, H, W] (the official ``Snn_Conv2d``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.reshape((T, B) + y.shape[1:])


class _ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward hands on its gradient in contiguous memory (see ``TimeBatchNorm``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clone(memory_format=torch.contiguous_format)


class TimeBatchNorm(nn.Module):
    """BatchNorm3d over (B, T, H, W) per channel of [T, B, C, H, W] under the official name ``bn``.

    The official ``batch_norm_2d`` / ``batch_norm_2d1`` permute to [B, C, T, H, W] for an ``nn.BatchNorm3d``
    whose weight starts at 0.5 (the threshold) or 0.1 (0.2 * threshold); the bias starts at 0.
    """

    def __init__(self, num_features: int, weight_init: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm3d(num_features)
        nn.init.constant_(self.bn.weight, weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # CPU BatchNorm returns its output and its input gradient contiguous, but its fake kernels keep the
        # permuted input's strides: a trace (dynamic shapes, aot_eager) planned views and the neuron's memory
        # walk on layouts the real tensors lack. Both copies are ones eager makes anyway (the neuron's dense
        # copy, the conv backward's reshape) and they change no number.
        x = _ContiguousGrad.apply(x) if x.requires_grad else x
        return self.bn(x.permute(1, 2, 0, 3, 4)).contiguous().permute(2, 0, 1, 3, 4)


def time_norm_neuron(
    norm: TimeBatchNorm, neuron: nn.Module, x: torch.Tensor, return_packed: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """``neuron(norm(x))`` on x [T, B, C, H, W]: one ``bn_lif`` op (docs/bn_lif.md; BatchNorm3d over (B, T, H, W)
    is its statistics over T x B x space) where ``nn.bn_lif.bn_fusion_blocker`` finds nothing against the
    BatchNorm3d and the neuron and ``norm`` has no hooks of its own, else the two modules' own calls.

    Args:
        norm (TimeBatchNorm): the BatchNorm (its ``bn`` is the ``nn.BatchNorm3d``).
        neuron (nn.Module): a stateless multi-step snnkernels neuron; its backend decides.
        x (Tensor): [T, B, C, H, W].
        return_packed (bool, Optional): return ``(spikes, packed)`` as ``bn_neuron``'s. Default: False
    """
    if not (norm._forward_hooks or norm._forward_pre_hooks) and bn_fusion_blocker(norm.bn, neuron, x) is None:
        return bn_neuron(norm.bn, neuron, x, return_packed=return_packed)
    return fire_packed(neuron, norm(x)) if return_packed else neuron(norm(x))


def _spike_step_conv(in_planes: int, planes: int, kernel_size: int, backend: str, **kwargs) -> nn.Conv2d:
    """A conv on every time step of a neuron's spikes: ``SpikeConv2d`` (input kept packed, 1 bit an element, for
    the backward) under a fused ``backend``, the plain ``StepConv2d`` under ``"torch"``. Same parameters,
    initialisation and keys."""
    packing = packing_backend(backend)
    if packing is None:
        return StepConv2d(in_planes, planes, kernel_size, bias=False, **kwargs)
    return SpikeConv2d(in_planes, planes, kernel_size, bias=False, backend=packing, **kwargs)


class _AttentionCell(nn.Module):
    """Holds the block's attention under the official name ``attention`` (the official ``PruningCell``)."""

    def __init__(self, attention: MultiDimensionalAttention) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x)


class AttResBlock(nn.Module):
    """Att-Res-SNN-1 residual block (released ImageNet code, MS-ResNet backbone; docs/ma_snn.md "Att-Res-SNN-1 block").

    On x [T, B, C, H, W] (membrane-potential-like)::

        R   = BN2(conv3x3(LIF(BN1(conv3x3_stride(LIF(x))))))
        out = relu(g_s * g_c * R) + shortcut(x)          (CSA: ``MultiDimensionalAttention(dims="CS")``)

    LIF is ``AttResLIFNode`` (u = 0.25 u (1 - detach(s)) + x, fire on u > 0.5, rectangle width 1); the convs
    have no bias and run on every time step; BN normalises each channel over (B, T, H, W) (BatchNorm3d),
    BN1 weight starts at 0.5 and BN2 at 0.1. The attention sits on the residual branch after its last BN,
    before the add; the ReLU is the code's (the paper does not mention it). CA and SA pool over (T, H, W)
    and (T, C) as released; the released network runs T = 1, where that equals per-step pooling.

    The shortcut is the identity when ``stride == 1`` and ``in_planes == planes``, otherwise
    AvgPool(2 x 2) -> conv1x1 -> BN (weight starts at 0.5). The official block pools whenever the shortcut
    is not the identity, which fails for ``stride=1`` with a channel change; here stride 1 does not pool.

    State-dict keys as the official ``BasicBlock``: ``residual_function.1.weight`` [planes, in_planes, 3, 3],
    ``residual_function.2.bn.*`` (weight, bias, running_mean, running_var, num_batches_tracked),
    ``residual_function.4.weight`` [planes, planes, 3, 3], ``residual_function.5.bn.*``,
    ``residual_function.6.attention.ca.sharedMLP.{0,2}.weight`` [planes // c_ratio, planes, 1, 1, 1] /
    [planes, planes // c_ratio, 1, 1, 1], ``residual_function.6.attention.sa.conv.weight`` [1, 2, k, k], and
    with a projection shortcut ``shortcut.1.weight`` [planes, in_planes, 1, 1] and ``shortcut.2.bn.*``.
    Parameters are created in the official order, so one seed gives the official initial weights.

    Memory-lean under a fused ``backend`` (docs/models.md "Memory-lean layers: packed spikes and BatchNorm
    folded into the neuron"): the two 3x3 convs take a LIF's spikes and are ``SpikeConv2d`` (input saved at 1
    bit an element; the shortcut's conv1x1 takes x and stays plain), and BN1 -> LIF runs as one ``bn_lif`` op
    where it fuses (``time_norm_neuron``; BN2 feeds the attention, not a neuron). Under ``"torch"`` the convs
    are plain ``StepConv2d`` and every module runs its own call. Same keys and numbers either way.

    Args:
        in_planes (int): input channels.
        planes (int): output channels.
        stride (int): stride of the first conv, 1 or 2 (the shortcut pools 2 x 2). Default: ``1``.
        c_ratio (int): CA's MLP reduction, at most ``planes``. Default: ``8``.
        kernel_size (int): SA's conv size, 3 or 7. Default: ``3``.
        layout (str): ``"TB"`` ([T, B, C, H, W], official) or ``"BT"``. Default: ``"TB"``.
        backend (str): the neurons' backend (see ``AttResLIFNode``); the attention takes it when it is
            ``"torch"`` or ``"triton"`` and runs on ``"auto"`` otherwise; the spike convs pack on it (on
            ``"auto"`` for ``"cupy"``); ``"torch"`` keeps plain convs. Default: ``"auto"``.
    """

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        c_ratio: int = 8,
        kernel_size: int = 3,
        *,
        layout: str = "TB",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"AttResBlock: layout must be 'TB' or 'BT', got {layout!r}")
        check_backend_name(backend, "AttResBlock", BACKEND_NAMES)  # the neurons' backends
        self.in_planes = positive_int(in_planes, "in_planes")
        self.planes = positive_int(planes, "planes")
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ValueError(f"AttResBlock: stride must be 1 or 2 (the shortcut pools 2 x 2), got {stride!r}")
        self.stride = stride
        self.layout = layout
        self.backend = backend
        # the attention has torch and Triton paths only: a native / CuPy choice (for the neurons) leaves it on auto
        attention_backend = backend if backend in ("torch", "triton") else "auto"
        # both 3x3 convs take a LIF's spikes: kept packed under a fused backend (the shortcut's takes x)
        self.residual_function = nn.Sequential(
            AttResLIFNode(backend=backend),
            _spike_step_conv(in_planes, planes, 3, backend, stride=stride, padding=1),
            TimeBatchNorm(planes, 0.5),
            AttResLIFNode(backend=backend),
            _spike_step_conv(planes, planes, 3, backend, padding=1),
            TimeBatchNorm(planes, 0.1),
            _AttentionCell(
                MultiDimensionalAttention(
                    None, planes, reduction_c=c_ratio, kernel_size=kernel_size, dims="CS", backend=attention_backend
                )
            ),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.AvgPool3d((1, 2, 2), stride=(1, 2, 2)) if stride == 2 else nn.Identity(),
                StepConv2d(in_planes, planes, 1, bias=False),
                TimeBatchNorm(planes, 0.5),
            )

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = to_tb("AttResBlock", x_seq, self.layout)
        if x.shape[2] != self.in_planes:
            raise ValueError(
                f"AttResBlock was built for in_planes = {self.in_planes} channels but the input has "
                f"{x.shape[2]} at dim 2 (layout={self.layout!r}, shape {list(x_seq.shape)})"
            )
        if self.stride == 2 and (x.shape[3] % 2 or x.shape[4] % 2):
            # the strided conv gives ceil(H / 2) rows, the 2 x 2 average pool floor(H / 2)
            raise ValueError(f"AttResBlock with stride 2 needs an even H and W, got H = {x.shape[3]}, W = {x.shape[4]}")
        check_dtype("AttResBlock", self, x)
        if x.numel() == 0:  # the batch norms' running statistics stay as they are
            shape = (x.shape[0], x.shape[1], self.planes, x.shape[3] // self.stride, x.shape[4] // self.stride)
            return from_tb(empty_output(x, self, shape=shape), self.layout)
        return from_tb(self._residual(x) + self.shortcut(x), self.layout)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        """``residual_function(x)``, with BN1 -> LIF as one op where it fuses (``time_norm_neuron``)."""
        lif0, conv1, bn1, lif1, conv2, bn2, attention = self.residual_function
        # each spike conv gets the packed copy its neuron wrote as it fired (docs/spike_pack.md "Packed by the neuron")
        h = conv1(*fire_packed(lif0, x)) if takes_packed(conv1) else conv1(lif0(x))
        if takes_packed(conv2):
            return attention(bn2(conv2(*time_norm_neuron(bn1, lif1, h, return_packed=True))))
        return attention(bn2(conv2(time_norm_neuron(bn1, lif1, h))))

    def extra_repr(self) -> str:
        return (
            f"in_planes={self.in_planes}, planes={self.planes}, stride={self.stride}, "
            f"layout={self.layout!r}, backend={self.backend!r}"
        )
