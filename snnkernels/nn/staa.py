"""STAA-SNN modules (docs/staa.md): parameter ownership, options, layout and shape checks only.

RECONSTRUCTED from the paper's prose: no official code exists and the paper's equations are lost, so the
structure is one inferred design (docs/staa.md "What is computed (inferred design)") and every open choice is
a constructor option.
The math is in ``snnkernels.reference.staa``; ``STAALIFNode.forward`` is one call to
``snnkernels.functional.staa_lif`` (``GlobalContextBlock``'s to ``functional.global_context``), which picks the
backend: the eager reference or the fused ops. ``backend="triton"`` runs the
global-context block's pooling (the attention-weighted context of every frame) as one fused sweep each
way (``snnkernels.ops.global_context_triton``) and the step-attention time loop on step kernels
(``snnkernels.ops.staa_step_triton``); the position encoding and the tiny MLPs stay torch. ``"auto"`` picks it on
CUDA; ``"native"`` and ``"cupy"`` raise ``BackendUnavailableError``.

- ``STAALIFNode``: the STAA-LIF neuron layer, a drop-in replacement for a LIF after conv + BN.
- ``GlobalContextBlock``: the GC block alone (GCNet's ``ContextBlock`` names, so its weights load).
- ``PositionEncoding``: the learnable position encoding alone.

There is no official checkpoint, so the parameter names are ours: ``pe.weight`` (P), ``gc.conv_mask.*``
and ``gc.channel_add_conv.*`` / ``gc.channel_mul_conv.*`` (GCNet's names), ``sa.fc1.weight`` /
``sa.fc2.weight`` (the step attention's MLP), ``M`` and ``N``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import functional as SF
from ..backends import check_backend_name
from ..reference.staa import (
    COEFFICIENT_MAPS,
    COEFFICIENT_SHAPES,
    GC_FUSIONS,
    LOOP_KERNELS,
    PE_SHAPES,
    SA_GATES,
    TSRD_GRANULARITIES,
    TSRD_SCOPES,
    GCParams,
    SAParams,
    STAAParams,
    check_option,
    check_probability,
    draw_drop_mask,
    position_encoding_reference,
)
from ..surrogate import Rectangle, Surrogate, coerce_surrogate
from .attention_inputs import LAYOUTS, check_dtype, check_t_c, empty_output, from_tb, positive_int, to_tb
from .neuron import in_recompute

__all__ = ["STAALIFNode", "GlobalContextBlock", "PositionEncoding"]

BACKENDS = ("auto", "torch", "triton")


def _check_layout(owner: str, layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(
            f"{owner}: layout must be 'TB' (input [T, B, C, H, W]) or 'BT' ([B, T, C, H, W]), got {layout!r}"
        )


def _finite(value: object, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def _hidden(C: int, reduction: object, name: str) -> int:
    reduction = positive_int(reduction, name)
    if C // reduction < 1:
        raise ValueError(
            f"{name} ({reduction}) cannot be greater than C ({C}): the hidden layer would have C // {name} = 0 units"
        )
    return C // reduction


def _optional_size(value: object, name: str) -> int | None:
    return None if value is None else positive_int(value, name)


def _check_hw(owner: str, x_tb: torch.Tensor, H: int | None, W: int | None, layout: str) -> None:
    for dim, want, name in ((3, H, "H"), (4, W, "W")):
        if want is not None and x_tb.shape[dim] != want:
            raise ValueError(
                f"{owner} was built for {name} = {want} but the input has {x_tb.shape[dim]} at dim "
                f"{dim} (layout={layout!r}, shape {list(from_tb(x_tb, layout).shape)})"
            )


class PositionEncoding(nn.Module):
    """STAA's learnable position encoding: ``Xp_t = X_t + P_t``, P initialised to 0.

    The paper says only "one encoding per time step and layer"; its shape is INFERRED, chosen by ``shape``:
    ``"TCHW"`` (P [T, C, H, W], one value per neuron and step; needs H and W), ``"TC"`` (P [T, C, 1, 1]) or
    ``"T"`` (P [T, 1, 1, 1]). Parameter: ``weight`` = P.

    Args:
        T (int): time steps of the input.
        C (int): channels of the input.
        H (int, Optional): height; required for ``shape="TCHW"``, checked against the input when given.
        W (int, Optional): width; as ``H``.
        shape (str): ``"TCHW"``, ``"TC"`` or ``"T"``. Default: ``"TCHW"`` (INFERRED).
        layout (str): ``"TB"`` for [T, B, C, H, W] input and output, ``"BT"`` for [B, T, C, H, W].
            Default: ``"TB"``.
    """

    def __init__(
        self, T: int, C: int, H: int | None = None, W: int | None = None, *, shape: str = "TCHW", layout: str = "TB"
    ) -> None:
        super().__init__()
        _check_layout("PositionEncoding", layout)
        self.T = positive_int(T, "T")
        self.C = positive_int(C, "C")
        self.H = _optional_size(H, "H")
        self.W = _optional_size(W, "W")
        self.shape = check_option(shape, PE_SHAPES, "pe_shape")
        if shape == "TCHW" and (self.H is None or self.W is None):
            raise ValueError("PositionEncoding: shape='TCHW' (P [T, C, H, W]) needs H and W")
        self.layout = layout
        size = {"TCHW": (T, C, H, W), "TC": (T, C, 1, 1), "T": (T, 1, 1, 1)}[shape]
        self.weight = nn.Parameter(torch.zeros(size))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = to_tb("PositionEncoding", x_seq, self.layout)
        check_t_c("PositionEncoding", x, self.T, self.C, self.layout)
        _check_hw("PositionEncoding", x, self.H, self.W, self.layout)
        check_dtype("PositionEncoding", self, x)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        return from_tb(position_encoding_reference(x, self.weight), self.layout)

    def extra_repr(self) -> str:
        return f"T={self.T}, C={self.C}, H={self.H}, W={self.W}, shape={self.shape!r}, layout={self.layout!r}"


class GlobalContextBlock(nn.Module):
    """The global context block of GCNet (Cao et al. 2019) as STAA uses it, on each [C, H, W] frame.

    ::

        att = softmax over the H*W pixels of conv_mask(x)            key 1x1 conv C -> 1 (with bias)
        ctx = sum_p att[p] x[:, p]                                   [C]
        v   = conv2(relu(LN(conv1(ctx))))                            C -> C // reduction -> C
        out = x + v    ("add")    or    x * sig(v)    ("mul")

    Parameters under GCNet's ``ContextBlock`` names, so its state dicts load: ``conv_mask.weight`` [1, C, 1, 1],
    ``conv_mask.bias`` [1], and ``channel_add_conv`` (or ``channel_mul_conv`` for ``fusion="mul"``) =
    Sequential(conv1, LayerNorm([C // reduction, 1, 1]), ReLU, conv2) with keys ``.0.weight``
    [C // reduction, C, 1, 1], ``.0.bias``, ``.1.weight``, ``.1.bias`` [C // reduction, 1, 1], ``.3.weight``
    [C, C // reduction, 1, 1], ``.3.bias`` [C]. Initialised as GCNet: ``conv_mask`` Kaiming-normal (fan-in)
    with zero bias, the last conv zero (so "add" starts as the identity; "mul" starts as x / 2), the rest
    PyTorch's defaults.

    Input: [..., C, H, W] with at least 4 dims (e.g. [T, B, C, H, W] or [N, C, H, W]); the block is per frame,
    so the layout does not matter.

    Args:
        C (int): channels of the input.
        reduction (int): the ratio r of the hidden width C // r. Default: ``4`` (the paper's best).
        fusion (str): ``"add"`` or ``"mul"``. Default: ``"add"`` (INFERRED; GCNet's default).
        layer_norm (bool): the LayerNorm between the two value convs. Default: ``True`` (INFERRED, as GCNet).
        bias (bool): biases on the three convs. Default: ``True`` (INFERRED, as GCNet).
        backend (str): ``"auto"`` (the fused pooling sweep on CUDA, else eager), ``"torch"`` or ``"triton"``.
            Default: ``"auto"``.
    """

    def __init__(
        self,
        C: int,
        reduction: int = 4,
        *,
        fusion: str = "add",
        layer_norm: bool = True,
        bias: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.backend = check_backend_name(backend, "GlobalContextBlock", BACKENDS)
        self.C = positive_int(C, "C")
        self.reduction = positive_int(reduction, "reduction")
        hidden = _hidden(self.C, reduction, "reduction")
        self.fusion = check_option(fusion, GC_FUSIONS, "gc_fusion")
        self.layer_norm = bool(layer_norm)
        self.bias = bool(bias)
        self.conv_mask = nn.Conv2d(C, 1, 1, bias=bias)
        transform = nn.Sequential(
            nn.Conv2d(C, hidden, 1, bias=bias),
            nn.LayerNorm([hidden, 1, 1]) if layer_norm else nn.Identity(),
            nn.ReLU(),
            nn.Conv2d(hidden, C, 1, bias=bias),
        )
        if fusion == "add":
            self.channel_add_conv = transform
        else:
            self.channel_mul_conv = transform
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        if bias:
            nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(transform[3].weight)
        if bias:
            nn.init.zeros_(transform[3].bias)

    @property
    def transform(self) -> nn.Sequential:
        return self.channel_add_conv if self.fusion == "add" else self.channel_mul_conv

    def params(self) -> GCParams:
        """The weights as ``snnkernels.reference.staa`` takes them (views)."""
        down, norm, _, up = self.transform
        ln = self.layer_norm
        return GCParams(
            self.conv_mask.weight.flatten(),
            self.conv_mask.bias,
            down.weight.flatten(1),
            down.bias,
            norm.weight.flatten() if ln else None,
            norm.bias.flatten() if ln else None,
            up.weight.flatten(1),
            up.bias,
        )

    @property
    def ln_eps(self) -> float:
        return self.transform[1].eps if self.layer_norm else 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"GlobalContextBlock: input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (4, 5) or x.shape[-3] != self.C:
            raise ValueError(
                f"GlobalContextBlock was built for C = {self.C}: the input must have shape "
                f"[N, C, H, W] or [T, B, C, H, W] with C = {self.C} at dim -3, got {list(x.shape)}"
            )
        check_dtype("GlobalContextBlock", self, x)
        if x.numel() == 0:
            return empty_output(x, self)
        return SF.global_context(
            x, self.params(), fusion=self.fusion, layer_norm=self.layer_norm, ln_eps=self.ln_eps, backend=self.backend
        )

    def extra_repr(self) -> str:
        return (
            f"C={self.C}, reduction={self.reduction}, fusion={self.fusion!r}, layer_norm={self.layer_norm}, "
            f"bias={self.bias}, backend={self.backend!r}"
        )


class _StepAttentionWeights(nn.Module):
    """The step attention's gate MLP ``z = fc2(relu(fc1(mean_hw(A + B))))``, no biases; ``fc2`` starts at 0."""

    def __init__(self, C: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(C, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, 2 * C, bias=False)
        # zero: every gate starts at sig(0), so with alpha = 2 the step attention starts as plain addition
        nn.init.zeros_(self.fc2.weight)


class STAALIFNode(nn.Module):
    """STAA-LIF (STAA-SNN, CVPR 2025): a LIF neuron layer with PE, GC and step attention. RECONSTRUCTED.

    On the conv + BN output X (H_0 = 0, every call starts from rest)::

        Xg_t = GC(X_t + P_t)
        A_t  = a H_{t-1},  B_t = b Xg_t                          (a, b) = coefficient_map(M, N)
        U_t  = A_t + B_t                if step t is dropped (TSRD; training only)
        U_t  = alpha sig(z_a) A_t + alpha sig(z_b) B_t           otherwise; (z_a, z_b) = fc2 relu fc1 mean_hw(A + B)
        S_t  = Heaviside(U_t - v_threshold);  H_t = U_t (1 - S_t) + v_reset S_t

    Returns the spikes S. At initialisation (P = 0, GC's last conv = 0, ``fc2`` = 0) it is the adaptive LIF
    ``U = M H + N X`` with M = 2, N = 0.1. The paper's equations are lost, so every option marked INFERRED is
    a reading of its prose; the defaults are the recommended reading (docs/staa.md "What is computed (inferred
    design)").

    TSRD (time-step random dropout): in training, each step's step attention is replaced by plain addition
    with probability ``drop_prob``. The mask is drawn from the module's own CPU ``torch.Generator`` seeded
    with ``seed`` (reproducible, independent of the global RNG; saved by pickling, not by ``state_dict``,
    ``manual_seed`` re-seeds it) or, with ``seed=None``, from the global RNG of the input's device
    (``torch.manual_seed`` makes it reproducible). ``forward(x, drop_mask=...)`` uses an explicit mask
    instead, in training and eval alike (e.g. to share one draw between layers). In eval mode without an
    explicit mask nothing is dropped. ``last_drop_mask`` holds the mask of the last call (bool, [T] or
    [T, B]; None when nothing could be dropped). Under activation checkpointing (``torch.utils.checkpoint``)
    the global RNG is restored for the recompute, so ``seed=None`` redraws the same mask; the module's own
    generator is not, so a seeded module in training raises there rather than redraw another mask.

    Parameters: ``pe.weight`` (P, see ``PositionEncoding``), ``gc.*`` (see ``GlobalContextBlock``),
    ``sa.fc1.weight`` [C // sa_reduction, C], ``sa.fc2.weight`` [2C, C // sa_reduction] (rows 0..C-1 gate A,
    rows C..2C-1 gate B), ``M`` and ``N`` ([C], [C, H, W] or [], by ``coefficient_shape``).

    Args:
        T (int): time steps of the input.
        C (int): channels of the input.
        H (int, Optional): height; required for ``pe_shape="TCHW"`` or ``coefficient_shape="CHW"``, checked
            against the input when given.
        W (int, Optional): width; as ``H``.
        reduction (int): GC's ratio r (hidden width C // r). Default: ``4``.
        sa_reduction (int): the step attention MLP's ratio (hidden width C // sa_reduction). Default: ``4``
            (INFERRED).
        alpha (float): the step attention's scale. Default: ``2.0``.
        drop_prob (float): TSRD's probability p. Default: ``0.1``.
        pe_shape (str): ``"TCHW"``, ``"TC"`` or ``"T"``. Default: ``"TCHW"`` (INFERRED).
        gc_fusion (str): ``"add"`` (Xp + v) or ``"mul"`` (Xp * sig(v)). Default: ``"add"`` (INFERRED).
        gc_layer_norm (bool): LayerNorm in GC's transform. Default: ``True`` (INFERRED).
        gc_bias (bool): biases on GC's convs. Default: ``True`` (INFERRED).
        sa_gate (str): ``"sigmoid"``, ``"softmax"`` (alpha * softmax of (z_a, z_b)) or ``"scaled_logits"``
            (sig(alpha z)). Default: ``"sigmoid"`` (INFERRED).
        coefficient_map (str): ``"raw"`` (a = M, b = N) or ``"tanh"`` (a = tanh M, b = tanh N).
            Default: ``"raw"`` (INFERRED).
        coefficient_shape (str): shape of M and N: ``"C"`` ([C]), ``"CHW"`` ([C, H, W]) or ``"scalar"``.
            Default: ``"C"`` (INFERRED).
        m_init (float): initial M. Default: ``2.0``.
        n_init (float): initial N. Default: ``0.1``.
        tsrd_scope (str): ``"step_attention"`` (a dropped step keeps PE and GC) or ``"all"`` (it uses the raw
            input X_t). Default: ``"step_attention"`` (INFERRED).
        tsrd_granularity (str): ``"step"`` (one draw per step, shared by the batch) or ``"sample"`` (one per
            step and sample). Default: ``"step"`` (INFERRED).
        v_threshold (float): firing threshold. Default: ``1.0``.
        v_reset (float): potential after a spike. Default: ``0.0`` (INFERRED).
        detach_reset (bool): no gradient through the reset. Default: ``False`` (INFERRED).
        surrogate_function (Surrogate): the spike's derivative. Default: ``Rectangle(1.0)``.
        seed (int, Optional): seed of the module's TSRD generator. Default: ``None`` (global RNG).
        layout (str): ``"TB"`` for [T, B, C, H, W] input and output, ``"BT"`` for [B, T, C, H, W].
            Default: ``"TB"``.
        backend (str): ``"auto"``, ``"torch"`` (the eager reference) or ``"triton"`` (the GC block's pooling
            fused and the loop on step kernels; the loop stays eager for ``coefficient_shape="CHW"``).
            Default: ``"auto"``.
        loop_kernel (str): on ``"triton"``, the time loop on per-step kernels (``"steps"``) or as one
            persistent kernel each way, one program per sample (``"persistent"``: one launch instead of
            several a step, but B programs; which is faster depends on the layer and the GPU, see
            bench/NOTES.md). The same numbers either way up to fp32 rounding of the gates. Default: ``"steps"``.
    """

    def __init__(
        self,
        T: int,
        C: int,
        H: int | None = None,
        W: int | None = None,
        *,
        reduction: int = 4,
        sa_reduction: int = 4,
        alpha: float = 2.0,
        drop_prob: float = 0.1,
        pe_shape: str = "TCHW",
        gc_fusion: str = "add",
        gc_layer_norm: bool = True,
        gc_bias: bool = True,
        sa_gate: str = "sigmoid",
        coefficient_map: str = "raw",
        coefficient_shape: str = "C",
        m_init: float = 2.0,
        n_init: float = 0.1,
        tsrd_scope: str = "step_attention",
        tsrd_granularity: str = "step",
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        detach_reset: bool = False,
        # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
        surrogate_function: Surrogate = Rectangle(1.0),  # noqa: B008
        seed: int | None = None,
        layout: str = "TB",
        backend: str = "auto",
        loop_kernel: str = "steps",
    ) -> None:
        super().__init__()
        owner = "STAALIFNode"
        _check_layout(owner, layout)
        self.backend = check_backend_name(backend, owner, BACKENDS)
        self.layout = layout
        self.T = positive_int(T, "T")
        self.C = positive_int(C, "C")
        self.H = _optional_size(H, "H")
        self.W = _optional_size(W, "W")
        self.sa_reduction = positive_int(sa_reduction, "sa_reduction")
        sa_hidden = _hidden(self.C, sa_reduction, "sa_reduction")
        self.alpha = _finite(alpha, "alpha", positive=True)
        self.drop_prob = check_probability(drop_prob)
        self.sa_gate = check_option(sa_gate, SA_GATES, "sa_gate")
        self.coefficient_map = check_option(coefficient_map, COEFFICIENT_MAPS, "coefficient_map")
        self.coefficient_shape = check_option(coefficient_shape, COEFFICIENT_SHAPES, "coefficient_shape")
        self.tsrd_scope = check_option(tsrd_scope, TSRD_SCOPES, "tsrd_scope")
        self.tsrd_granularity = check_option(tsrd_granularity, TSRD_GRANULARITIES, "tsrd_granularity")
        self.v_threshold = _finite(v_threshold, "v_threshold")
        self.v_reset = _finite(v_reset, "v_reset")
        self.detach_reset = bool(detach_reset)
        self.surrogate_function = coerce_surrogate(surrogate_function)
        self.loop_kernel = check_option(loop_kernel, LOOP_KERNELS, "loop_kernel")
        if coefficient_shape == "CHW" and (self.H is None or self.W is None):
            raise ValueError(f"{owner}: coefficient_shape='CHW' (M, N [C, H, W]) needs H and W")
        if pe_shape == "TCHW" and (self.H is None or self.W is None):
            raise ValueError(
                f"{owner}: pe_shape='TCHW' (P [T, C, H, W], the default) needs H and W; pass them "
                "or choose pe_shape='TC' / 'T'"
            )

        self.pe = PositionEncoding(T, C, H, W, shape=pe_shape, layout=layout)
        self.gc = GlobalContextBlock(
            C, reduction, fusion=gc_fusion, layer_norm=gc_layer_norm, bias=gc_bias, backend=backend
        )
        self.sa = _StepAttentionWeights(C, sa_hidden)
        size = {"C": (C,), "CHW": (C, H, W), "scalar": ()}[coefficient_shape]
        self.M = nn.Parameter(torch.full(size, _finite(m_init, "m_init")))
        self.N = nn.Parameter(torch.full(size, _finite(n_init, "n_init")))

        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._generator: torch.Generator | None = None
        if seed is not None:
            self.manual_seed(seed)
        self.last_drop_mask: torch.Tensor | None = None

    def manual_seed(self, seed: int) -> None:
        """(Re)seed the module's TSRD generator; from now on the masks no longer use the global RNG."""
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)

    def params(self) -> STAAParams:
        """The parameters as ``snnkernels.reference.staa.staa_lif_reference`` takes them."""
        return STAAParams(
            self.pe.weight, self.gc.params(), SAParams(self.sa.fc1.weight, self.sa.fc2.weight), self.M, self.N
        )

    def options(self) -> dict:
        """The keyword options of ``staa_lif_reference`` (everything but the TSRD mask)."""
        return dict(
            alpha=self.alpha,
            sa_gate=self.sa_gate,
            gc_fusion=self.gc.fusion,
            gc_layer_norm=self.gc.layer_norm,
            ln_eps=self.gc.ln_eps,
            coefficient_map=self.coefficient_map,
            tsrd_scope=self.tsrd_scope,
            tsrd_granularity=self.tsrd_granularity,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            detach_reset=self.detach_reset,
            surrogate_function=self.surrogate_function,
        )

    def draw_drop_mask(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """A fresh TSRD mask ([T] or [T, batch_size] by ``tsrd_granularity``) from the module's RNG."""
        return draw_drop_mask(
            self.T,
            batch_size,
            self.drop_prob,
            granularity=self.tsrd_granularity,
            generator=self._generator,
            device=device,
        )

    def forward(self, x_seq: torch.Tensor, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Spikes of ``x_seq`` (in ``layout``); ``drop_mask``: an explicit TSRD mask, bool [T] or [T, B]
        (time first in either layout, True = drop), used instead of a draw."""
        owner = "STAALIFNode"
        x = to_tb(owner, x_seq, self.layout)
        check_t_c(owner, x, self.T, self.C, self.layout)
        _check_hw(owner, x, self.H, self.W, self.layout)
        recompute = in_recompute()
        if drop_mask is None and self.training and self.drop_prob > 0:
            if recompute and self._generator is not None:
                raise RuntimeError(
                    "STAALIFNode: activation checkpointing recomputes this layer in the backward pass, but its TSRD "
                    f"mask comes from the module's own generator (seed={self.seed}), which torch.utils.checkpoint "
                    "does not restore, so the recompute would draw another mask and return wrong gradients. Use "
                    "seed=None (the global RNG, which checkpointing restores) or pass drop_mask explicitly"
                )
            drop_mask = self.draw_drop_mask(x.shape[1], x.device)
        if not recompute:  # the recompute leaves the record of the forward's mask alone
            self.last_drop_mask = drop_mask.detach() if isinstance(drop_mask, torch.Tensor) else None
        if x.numel() == 0:  # after the draw, so that the RNG advances as for any other input
            return empty_output(x_seq, self)
        spikes = SF.staa_lif(
            x, self.params(), drop_mask=drop_mask, loop_kernel=self.loop_kernel, backend=self.backend, **self.options()
        )
        return from_tb(spikes, self.layout)

    def extra_repr(self) -> str:
        return (
            f"T={self.T}, C={self.C}, H={self.H}, W={self.W}, sa_reduction={self.sa_reduction}, alpha={self.alpha}, "
            f"drop_prob={self.drop_prob}, sa_gate={self.sa_gate!r}, coefficient_map={self.coefficient_map!r}, "
            f"coefficient_shape={self.coefficient_shape!r}, tsrd_scope={self.tsrd_scope!r}, "
            f"tsrd_granularity={self.tsrd_granularity!r}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
            f"detach_reset={self.detach_reset}, surrogate_function={self.surrogate_function}, seed={self.seed}, "
            f"layout={self.layout!r}, backend={self.backend!r}, loop_kernel={self.loop_kernel!r}"
        )
