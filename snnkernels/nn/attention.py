"""Attention modules of TCJA-SNN and DTA-SNN: parameter ownership, layout and shape checks only.

The math is in ``snnkernels.reference.tcja`` / ``snnkernels.reference.dta``; the forwards call
``snnkernels.functional`` (``tcja``, ``txa``, ``tna``, ``dta``), whose ``backend`` is ``"auto"`` (fused
Triton on CUDA, the eager reference elsewhere), ``"torch"`` or ``"triton"``. T-NA's convolutions always run
on cuDNN / cuBLAS through torch; ``"triton"`` fuses the elementwise work around them.

Each module takes its official constructor's arguments and owns its parameters under the official names
and shapes, so ``module.load_state_dict(official_module.state_dict())`` works unchanged, and the same seed
gives the same initial weights. Differences a user may notice, all deliberate:

- Layout: the library's [T, B, C, H, W] by default (what TCJA's main scripts use); ``layout="BT"`` takes
  and returns [B, T, C, H, W] like DTA-SNN and TCJA-TET. The official weights are the same either way.
- T and C are fixed at construction (they are conv channel counts); an input whose T or C differs
  raises a ``ValueError`` instead of failing inside a conv or, worse, running on swapped T and B.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import functional as SF
from ..backends import check_backend_name
from ..reference.dta import TNAParams
from .attention_inputs import LAYOUTS, check_dtype, check_t_c, empty_output, from_tb, positive_int, to_tb

__all__ = ["TCJA", "TLA", "CLA", "TXA", "TNA", "DTA"]


def _check_options(owner: str, layout: str, backend: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(
            f"{owner}: layout must be 'TB' (input [T, B, C, H, W]) or 'BT' ([B, T, C, H, W]), got {layout!r}"
        )
    check_backend_name(backend, owner)


class TCJAFamily(nn.Module):
    """TCJA and its single-branch ablations: the same constructor, a subset of the two convs."""

    mode = "both"

    def __init__(
        self,
        kernel_size_t: int = 2,
        kernel_size_c: int = 1,
        T: int = 8,
        channel: int = 128,
        *,
        layout: str = "TB",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _check_options(owner, layout, backend)
        self.kernel_size_t = positive_int(kernel_size_t, "kernel_size_t")
        self.kernel_size_c = positive_int(kernel_size_c, "kernel_size_c")
        self.T = positive_int(T, "T")
        self.channel = positive_int(channel, "channel")
        self.layout = layout
        self.backend = backend
        # Created in the official order (conv, then conv_c) so one seed gives the official initial weights.
        # They only hold the parameters: forward runs the reference, whose padding is spelt out.
        if self.mode in ("both", "cla"):
            # T conv-channels, slides along the CHANNEL axis: the paper's CLA, kernel length K_C
            self.conv = nn.Conv1d(T, T, kernel_size_t, padding="same", bias=False)
        if self.mode in ("both", "tla"):
            # C conv-channels, slides along TIME: the paper's TLA, kernel length K_T
            self.conv_c = nn.Conv1d(channel, channel, kernel_size_c, padding="same", bias=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # TCJA-TET wraps `conv` in an nn.Sequential (key conv.0.weight); the math is the same
        tet_key = prefix + "conv.0.weight"
        if self.mode != "tla" and tet_key in state_dict and prefix + "conv.weight" not in state_dict:
            state_dict[prefix + "conv.weight"] = state_dict.pop(tet_key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def weights(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(TLA weight, CLA weight) as ``functional.tcja`` takes them; None for an absent branch."""
        return self.conv_c.weight if self.mode != "cla" else None, self.conv.weight if self.mode != "tla" else None

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        x = to_tb(owner, x_seq, self.layout)
        check_t_c(owner, x, self.T, self.channel, self.layout)
        check_dtype(owner, self, x)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        y = SF.tcja(x, *self.weights(), mode=self.mode, backend=self.backend)
        return from_tb(y, self.layout)

    def gate(self, x_seq: torch.Tensor) -> torch.Tensor:
        """The gate F (> 0, one per (t, b, c)) that ``forward`` multiplies x by, without applying it:
        [T, B, C] for ``layout="TB"``, [B, T, C] for ``"BT"`` (``functional.tcja_gate``)."""
        owner = type(self).__name__
        x = to_tb(owner, x_seq, self.layout)
        check_t_c(owner, x, self.T, self.channel, self.layout)
        check_dtype(owner, self, x)
        if x.shape[1] > 0 and x.shape[3] * x.shape[4] == 0:
            raise ValueError(
                f"{owner}.gate: the gate of an empty H x W plane is a mean over no pixel, undefined "
                f"(input shape {list(x_seq.shape)}); forward returns the empty output"
            )
        if x.numel() == 0:
            return from_tb(empty_output(x, self, shape=tuple(x.shape[:3])), self.layout)
        return from_tb(SF.tcja_gate(x, *self.weights(), mode=self.mode, backend=self.backend), self.layout)

    def extra_repr(self) -> str:
        return (
            f"kernel_size_t={self.kernel_size_t} (slides along C), kernel_size_c={self.kernel_size_c} "
            f"(slides along T), T={self.T}, channel={self.channel}, layout={self.layout!r}, backend={self.backend!r}"
        )


class TCJA(TCJAFamily):
    """Temporal-channel joint attention (TCJA-SNN): ``Y = X * sig(TLA(Z) * CLA(Z))``, Z = mean_hw X.

    Same constructor, parameter names and shapes as the official ``TCJA`` (ridgerchu/TCJA, src/layers.py);
    TCJA-TET state dicts (``conv.0.weight``) load too. Naming swap kept from the official code:
    ``kernel_size_t`` is the length of the conv whose conv-channels are the T steps, which slides along the
    CHANNEL axis (the paper's K_C), and ``kernel_size_c`` the length of the conv over the C channels, which
    slides along TIME (the paper's K_T). Both use PyTorch's 'same' padding (even kernel: extra zero on the
    right).

    Args:
        kernel_size_t (int): length of ``conv`` (weight [T, T, kernel_size_t]), along C. Default: ``2``.
        kernel_size_c (int): length of ``conv_c`` (weight [channel, channel, kernel_size_c]), along T.
            Default: ``1``.
        T (int): time steps of the input. Default: ``8``.
        channel (int): channels C of the input. Default: ``128``.
        layout (str): ``"TB"`` for [T, B, C, H, W] input and output, ``"BT"`` for [B, T, C, H, W].
            Default: ``"TB"``.
        backend (str): ``"auto"`` (fused Triton on CUDA, else the eager reference), ``"torch"`` or
            ``"triton"``. Default: ``"auto"``.
    """


class TLA(TCJAFamily):
    """TCJA ablation with the temporal branch only: ``Y = X * sig(TLA(Z))``.

    Official ``TLA``: same constructor as ``TCJA``; owns only ``conv_c`` (weight [channel, channel,
    kernel_size_c], slides along TIME); ``kernel_size_t`` is accepted and unused, as in the official code.
    """

    mode = "tla"


class CLA(TCJAFamily):
    """TCJA ablation with the channel branch only: ``Y = X * sig(CLA(Z))``.

    Official ``CLA``: same constructor as ``TCJA``; owns only ``conv`` (weight [T, T, kernel_size_t], slides
    along the CHANNEL axis); ``kernel_size_c`` is accepted and unused, as in the official code.
    """

    mode = "cla"


class TXA(nn.Module):
    """DTA's temporal-channel identical cross attention: ``XA = (X + scale_t sig(Qt)) * (X + scale_c sig(Qc))``.

    Parameters as the official ``T_XA`` (MnJnKIM/DTA-SNN, models/TXA.py): ``conv_t.weight`` [T, T, 3]
    (slides along C, padding 1 / 1), ``conv_c.weight`` [C, C, 6] (slides along T, padding 2 / 3),
    ``scale_t`` and ``scale_c`` (0-d, init 1). The official module hard-codes C = 64.

    Args:
        T (int): time steps of the input (the official ``time_step``).
        C (int): channels of the input. Default: ``64``.
        layout (str): ``"TB"`` ([T, B, C, H, W]) or ``"BT"`` ([B, T, C, H, W], official). Default: ``"TB"``.
        backend (str): ``"auto"``, ``"torch"`` or ``"triton"`` (fused sweeps). Default: ``"auto"``.
    """

    def __init__(self, T: int, C: int = 64, *, layout: str = "TB", backend: str = "auto") -> None:
        super().__init__()
        _check_options("TXA", layout, backend)
        self.T = positive_int(T, "T")
        self.C = positive_int(C, "C")
        self.layout = layout
        self.backend = backend
        self.conv_t = nn.Conv1d(T, T, 3, padding="same", bias=False)
        self.conv_c = nn.Conv1d(C, C, 6, padding="same", bias=False)
        self.scale_t = nn.Parameter(torch.tensor(1.0))
        self.scale_c = nn.Parameter(torch.tensor(1.0))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = to_tb("TXA", x_seq, self.layout)
        check_t_c("TXA", x, self.T, self.C, self.layout)
        check_dtype("TXA", self, x)
        if x.numel() == 0:
            return empty_output(x_seq, self)
        y = SF.txa(x, self.conv_t.weight, self.conv_c.weight, self.scale_t, self.scale_c, backend=self.backend)
        return from_tb(y, self.layout)

    def extra_repr(self) -> str:
        return f"T={self.T}, C={self.C}, layout={self.layout!r}, backend={self.backend!r}"


class _TCAWeights(nn.Module):
    """Holds T-NA's LTCA and GTCA weights under the official ``TCA`` names (``LTCA``, ``MLP_block``)."""

    def __init__(self, dim: int, kernel_size: int, dilation: int = 3, reduction: int = 16) -> None:
        super().__init__()
        dw_k = 2 * dilation - 1
        # odd length nearest below kernel_size // dilation (the official bookkeeping); 1 for DTA's 7
        dd_k = kernel_size // dilation
        dd_k -= 1 - dd_k % 2
        if dd_k < 1:
            raise ValueError(f"kernel_size must be at least {dilation} (dilated kernel {dd_k}), got {kernel_size}")
        self.dilation = dilation
        self.LTCA = nn.Sequential(
            nn.Conv2d(dim, dim, dw_k, padding=(dw_k - 1) // 2, groups=dim),
            nn.Conv2d(dim, dim, dd_k, padding=dilation * (dd_k - 1) // 2, groups=dim, dilation=dilation),
            nn.Conv2d(dim, dim, 1),
        )
        hidden = dim // max(dim // reduction, 4)
        self.MLP_block = nn.Sequential(
            nn.Linear(dim, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, dim, bias=False)
        )


class TNA(nn.Module):
    """DTA's temporal-channel non-identical attention on D = T * C fused channels (t-major, j = t * C + c).

    ``NA = Wd @ (g * L * E) + bd + X2`` with ``E = gelu(We @ X2 + be)``, ``L`` = depth-wise 5x5 ->
    dilated depth-wise -> point-wise conv of E, ``g`` = MLP(mean_hw E) (no bias, no sigmoid). Parameters as
    the official ``T_NA`` (``encoding.0``, ``tca.LTCA.{0,1,2}``, ``tca.MLP_block.{0,2}``, ``decoding``).
    The default ``kernel_size=7`` is the value DTA passes (the dilated conv is then 1x1); the official
    class default is 21, so pass ``kernel_size=21`` to load a ``T_NA`` built with its defaults.

    Input: [T, B, C, H, W] (``layout="TB"``) or [B, T, C, H, W] (``"BT"``) with T * C = ``in_planes``, or
    the official fused [B, in_planes, H, W] (4-D, returned as such).

    Args:
        in_planes (int): D = T * C.
        kernel_size (int): sets the dilated depth-wise kernel, ``k // 3`` rounded down to odd. Default: ``7``.
        attn_shortcut (bool): add the input back (residual). Default: ``True``.
        layout (str): layout of 5-D input. Default: ``"TB"``.
        backend (str): ``"auto"``, ``"torch"`` or ``"triton"``: the dense 1x1 and depth-wise convolutions run
            on cuDNN / cuBLAS either way; ``"triton"`` fuses the elementwise work around them. Default: ``"auto"``.
    """

    def __init__(
        self,
        in_planes: int,
        kernel_size: int = 7,
        attn_shortcut: bool = True,
        *,
        layout: str = "TB",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        _check_options("TNA", layout, backend)
        self.in_planes = positive_int(in_planes, "in_planes")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        self.attn_shortcut = bool(attn_shortcut)
        self.layout = layout
        self.backend = backend
        self.encoding = nn.Sequential(nn.Conv2d(in_planes, in_planes, 1), nn.GELU())
        self.tca = _TCAWeights(in_planes, kernel_size)
        self.decoding = nn.Conv2d(in_planes, in_planes, 1)

    def params(self) -> TNAParams:
        """The weights in the order ``snnkernels.reference.tna_reference`` takes them."""
        enc, (dw, dil, pw), (fc1, _, fc2) = self.encoding[0], self.tca.LTCA, self.tca.MLP_block
        return TNAParams(
            enc.weight,
            enc.bias,
            dw.weight,
            dw.bias,
            dil.weight,
            dil.bias,
            pw.weight,
            pw.bias,
            fc1.weight,
            fc2.weight,
            self.decoding.weight,
            self.decoding.bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        options = dict(dilation=self.tca.dilation, attn_shortcut=self.attn_shortcut)
        fused_input = isinstance(x, torch.Tensor) and x.dim() == 4
        if fused_input:
            if x.shape[1] != self.in_planes:
                raise ValueError(
                    f"TNA was built for in_planes = {self.in_planes} but the fused [B, T*C, H, W] input has "
                    f"{x.shape[1]} at dim 1 (shape {list(x.shape)})"
                )
            x_tb = x
        else:
            x_tb = to_tb("TNA", x, self.layout)
            T, C = x_tb.shape[0], x_tb.shape[2]
            if T * C != self.in_planes:
                raise ValueError(
                    f"TNA was built for in_planes = T * C = {self.in_planes} but the input (layout={self.layout!r}, "
                    f"shape {list(x.shape)}) has T * C = {T} * {C} = {T * C}"
                )
        check_dtype("TNA", self, x_tb)
        if x_tb.numel() == 0:
            return empty_output(x, self)
        y = SF.tna(x_tb, self.params(), **options, backend=self.backend)
        return y if fused_input else from_tb(y, self.layout)

    def extra_repr(self) -> str:
        return (
            f"in_planes={self.in_planes}, kernel_size={self.kernel_size}, attn_shortcut={self.attn_shortcut}, "
            f"layout={self.layout!r}, backend={self.backend!r}"
        )


class DTA(nn.Module):
    """Dual temporal-channel-wise attention (DTA-SNN): ``Y = sig(T_NA(X) * T_XA(X)) * S``.

    Parameters as the official ``DTA`` (``T_NA.*``: a ``TNA(T * out_channels, kernel_size=7)``; ``T_XA.*``:
    a ``TXA(T, out_channels)``). The official code fixes the T-XA channel count at 64, so its checkpoints
    exist for ``out_channels=64`` only; other values work here.

    ``forward(x_seq, spikes)``: X = the conv+BN output, S = LIF(X) (its spikes), both of one shape.

    Args:
        T (int): time steps of the input.
        out_channels (int): channels C of the input.
        layout (str): ``"TB"`` ([T, B, C, H, W]) or ``"BT"`` ([B, T, C, H, W], official). Default: ``"TB"``.
        backend (str): ``"auto"``, ``"torch"`` or ``"triton"`` (``SF.dta``: T-NA's convolutions on cuDNN /
            cuBLAS with the elementwise work fused, then one output sweep). Default: ``"auto"``.
    """

    def __init__(self, T: int, out_channels: int, *, layout: str = "TB", backend: str = "auto") -> None:
        super().__init__()
        _check_options("DTA", layout, backend)
        self.T = positive_int(T, "T")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.layout = layout
        self.backend = backend
        # official creation order (T_NA, then T_XA): one seed gives the official initial weights
        self.T_NA = TNA(T * out_channels, kernel_size=7, layout=layout, backend=backend)
        self.T_XA = TXA(T, out_channels, layout=layout, backend=backend)

    def forward(self, x_seq: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
        x = to_tb("DTA", x_seq, self.layout, "x_seq")
        s = to_tb("DTA", spikes, self.layout, "spikes")
        check_t_c("DTA", x, self.T, self.out_channels, self.layout, "x_seq")
        if s.shape != x.shape:
            raise ValueError(f"DTA: spikes must have the shape of x_seq {list(x_seq.shape)}, got {list(spikes.shape)}")
        check_dtype("DTA", self, x, "x_seq")
        if x.numel() == 0:
            return empty_output(x_seq, self, spikes)
        xa, na = self.T_XA, self.T_NA
        y = SF.dta(
            x,
            s,
            xa.conv_t.weight,
            xa.conv_c.weight,
            xa.scale_t,
            xa.scale_c,
            na.params(),
            dilation=na.tca.dilation,
            attn_shortcut=na.attn_shortcut,
            backend=self.backend,
        )
        return from_tb(y, self.layout)

    def extra_repr(self) -> str:
        return f"T={self.T}, out_channels={self.out_channels}, layout={self.layout!r}, backend={self.backend!r}"
