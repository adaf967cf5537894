"""Eager reference of STAA-LIF (STAA-SNN, CVPR 2025). RECONSTRUCTED, not the authors' model.

No official code exists and the available paper text has lost its equations (Eqs. 1-3 and 6-14): only the
prose and the hyper-parameters survive. Everything below is an INFERRED design (docs/staa.md "What is computed
(inferred design)"), and every choice the prose leaves open (docs/staa.md "Open questions") is a keyword argument
whose default is the recommended reading; docs/staa.md "Options (every INFERRED choice is one)" lists them.
Plain torch, autograd does the backward; ground truth for future fused kernels and the implementation behind
``snnkernels.nn.staa``. Never edit it to match a kernel.

Per layer, on the conv + BN output X [T, B, C, H, W] (H_0 = 0)::

    Xp_t = X_t + P_t                                            position encoding (PE), P init 0
    Xg_t = GC(Xp_t)                                             global context block, per (b, t)
    A_t  = a * H_{t-1},   B_t = b * Xg_t                        (a, b) = map(M, N), M init 2, N init 0.1
    U_t  = A_t + B_t                           if step t is dropped (TSRD, training only)
    U_t  = SA(A_t, B_t)                        otherwise (step attention)
    S_t  = Heaviside(U_t - V_th)                                fires on U_t >= V_th = 1
    H_t  = U_t (1 - S_t) + V_reset S_t                          hard reset to 0

    GC:  att = softmax over the H*W pixels of (wk . Xp[:, p] + bk)
         ctx = sum_p att[p] Xp[:, p]                            [C]
         v   = W2 relu(LN(W1 ctx + b1)) + b2                    C -> C // r -> C, LN over C // r (affine)
         Xg  = Xp + v   ("add")   or   Xp * sig(v)   ("mul")    v broadcast over (h, w)
    SA:  z   = Ws2 relu(Ws1 mean_hw(A + B)) = (z_a, z_b)        [B, 2C] split into two [B, C], no biases
         SA  = alpha sig(z_a) A + alpha sig(z_b) B              ("sigmoid"; alpha = 2)

With Ws2 = 0 the step attention is exactly the plain addition TSRD falls back to (alpha sig(0) = 1).
The surrogate is the paper's rectangle of width 1 (gradient 1 where |U - 1| < 1/2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..surrogate import Rectangle, Surrogate
from .leaky import state_dtype

__all__ = [
    "GC_FUSIONS",
    "SA_GATES",
    "COEFFICIENT_MAPS",
    "COEFFICIENT_SHAPES",
    "PE_SHAPES",
    "LOOP_KERNELS",
    "TSRD_SCOPES",
    "TSRD_GRANULARITIES",
    "GCParams",
    "SAParams",
    "STAAParams",
    "check_option",
    "position_encoding_reference",
    "global_context_transform_reference",
    "global_context_fusion",
    "staa_features_reference",
    "step_attention_gates",
    "global_context_attention_reference",
    "global_context_vector_reference",
    "global_context_reference",
    "step_attention_reference",
    "staa_coefficients",
    "draw_drop_mask",
    "staa_lif_reference",
]

GC_FUSIONS = ("add", "mul")
SA_GATES = ("sigmoid", "softmax", "scaled_logits")
COEFFICIENT_MAPS = ("raw", "tanh")
COEFFICIENT_SHAPES = ("C", "CHW", "scalar")
PE_SHAPES = ("TCHW", "TC", "T")
# backend="triton" only: the time loop on per-step kernels, or as one persistent kernel per direction
LOOP_KERNELS = ("steps", "persistent")
TSRD_SCOPES = ("step_attention", "all")
TSRD_GRANULARITIES = ("step", "sample")


class GCParams(NamedTuple):
    """Weights of the global context block (GCNet form), as 1-D / 2-D tensors.

    ``key_weight`` [C] and ``key_bias`` [] or [1]: the key 1x1 conv C -> 1 (GCNet ``conv_mask``);
    ``down_weight`` [C // r, C], ``down_bias`` [C // r]: the first value conv; ``ln_weight`` / ``ln_bias``
    [C // r]: the LayerNorm's affine parameters; ``up_weight`` [C, C // r], ``up_bias`` [C]: the second value
    conv. A bias (or LN affine parameter) that is None is left out.
    """

    key_weight: torch.Tensor
    key_bias: torch.Tensor | None
    down_weight: torch.Tensor
    down_bias: torch.Tensor | None
    ln_weight: torch.Tensor | None
    ln_bias: torch.Tensor | None
    up_weight: torch.Tensor
    up_bias: torch.Tensor | None


class SAParams(NamedTuple):
    """Weights of the step attention's gate MLP (no biases): ``w1`` [hidden, C], ``w2`` [2C, hidden].

    Rows 0..C-1 of ``w2`` give z_a (the gate of the carried state A = a H_{t-1}), rows C..2C-1 give z_b (the
    gate of the input B = b Xg_t).
    """

    w1: torch.Tensor
    w2: torch.Tensor


class STAAParams(NamedTuple):
    """All learnable tensors of one STAA-LIF layer.

    ``position``: P, [T, C, H, W], [T, C, 1, 1] or [T, 1, 1, 1], or None (no PE). ``gc``: ``GCParams`` or None
    (no GC block). ``sa``: ``SAParams`` or None (always plain addition). ``m`` / ``n``: the coefficients M and
    N, each [C], [C, H, W] or a scalar ([] / [1]).
    """

    position: torch.Tensor | None
    gc: GCParams | None
    sa: SAParams | None
    m: torch.Tensor
    n: torch.Tensor


def check_option(value: object, allowed: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``allowed``; a ValueError naming the choices otherwise."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _check_5d(x: object, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 5:
        raise ValueError(f"{what} needs x of shape [T, B, C, H, W], got {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what} needs a floating-point x, got {x.dtype}")
    return x


def _check_shape(t: object, shape: tuple[int, ...], name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape {list(shape)}, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")


def _has_one_of_shapes(t: object, shapes: list[tuple]) -> bool:
    """Whether tensor ``t`` has one of ``shapes``, dimension by dimension: torch.compile traces this with
    symbolic sizes, where a tuple's ``in`` test of a list of shapes goes wrong."""
    if not isinstance(t, torch.Tensor):
        return False
    for shape in shapes:
        if t.dim() == len(shape) and all(a == b for a, b in zip(t.shape, shape, strict=True)):
            return True
    return False


def _check_position(position: torch.Tensor, T: int, C: int, H: int, W: int) -> None:
    allowed = [(T, C, H, W), (T, C, 1, 1), (T, 1, 1, 1)]
    if not _has_one_of_shapes(position, allowed):
        got = list(position.shape) if isinstance(position, torch.Tensor) else type(position).__name__
        raise ValueError(
            f"position must have shape [T, C, H, W], [T, C, 1, 1] or [T, 1, 1, 1] = one of "
            f"{[list(s) for s in allowed]} for x of shape [T, B, C, H, W] = {[T, '*', C, H, W]}, "
            f"got {got}"
        )


def _check_gc(gc: object, C: int) -> GCParams:
    if not isinstance(gc, GCParams):
        raise TypeError(f"gc must be a GCParams, got {type(gc).__name__}")
    if not isinstance(gc.down_weight, torch.Tensor) or gc.down_weight.dim() != 2:
        raise ValueError("gc.down_weight must have shape [C // r, C]")
    hidden = gc.down_weight.shape[0]
    _check_shape(gc.key_weight, (C,), "gc.key_weight")
    if gc.key_bias is not None and gc.key_bias.numel() != 1:
        raise ValueError(f"gc.key_bias must have one element, got shape {list(gc.key_bias.shape)}")
    _check_shape(gc.down_weight, (hidden, C), "gc.down_weight")
    _check_shape(gc.up_weight, (C, hidden), "gc.up_weight")
    for name, value, size in (
        ("down_bias", gc.down_bias, hidden),
        ("ln_weight", gc.ln_weight, hidden),
        ("ln_bias", gc.ln_bias, hidden),
        ("up_bias", gc.up_bias, C),
    ):
        if value is not None:
            _check_shape(value, (size,), f"gc.{name}")
    return gc


def _check_sa(sa: object, C: int) -> SAParams:
    if not isinstance(sa, SAParams):
        raise TypeError(f"sa must be an SAParams, got {type(sa).__name__}")
    if not isinstance(sa.w1, torch.Tensor) or sa.w1.dim() != 2:
        raise ValueError("sa.w1 must have shape [hidden, C]")
    _check_shape(sa.w1, (sa.w1.shape[0], C), "sa.w1")
    _check_shape(sa.w2, (2 * C, sa.w1.shape[0]), "sa.w2")
    return sa


def _check_coefficient(value: object, name: str, C: int, H: int, W: int) -> None:
    shapes = [(C,), (C, H, W), (), (1,)]
    if not _has_one_of_shapes(value, shapes):
        got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"{name} must be a tensor of shape [C] = [{C}], [C, H, W] = [{C}, {H}, {W}] or a "
            f"scalar ([] or [1]), got {got}"
        )


def _per_channel(c: torch.Tensor) -> torch.Tensor:
    """A scalar, [C] or [C, H, W] coefficient shaped to broadcast against one step [B, C, H, W]."""
    if c.dim() == 1 and c.numel() > 1:
        return c[:, None, None]
    return c.reshape(()) if c.numel() == 1 and c.dim() <= 1 else c


def position_encoding_reference(x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """PE: ``Xp_t = X_t + P_t`` on x [T, B, C, H, W]; P [T, C, H, W], [T, C, 1, 1] or [T, 1, 1, 1]."""
    _check_5d(x, "the position encoding")
    T, _, C, H, W = x.shape
    _check_position(position, T, C, H, W)
    return x + position[:, None]


def global_context_attention_reference(
    x: torch.Tensor, key_weight: torch.Tensor, key_bias: torch.Tensor | None = None
) -> torch.Tensor:
    """GC's attention map [..., H*W]: a softmax over the H*W PIXELS of ``wk . x[..., :, p] + bk``.

    ``x`` is [..., C, H, W] (one map per leading index, e.g. per (t, b)). The key bias shifts every logit
    alike, so it never changes the map (its gradient is 0); it is kept because GCNet's key conv has one.
    """
    logits = torch.einsum("...cp,c->...p", x.flatten(-2), key_weight)
    if key_bias is not None:
        logits = logits + key_bias.reshape(())
    return torch.softmax(logits, dim=-1)


def global_context_vector_reference(
    x: torch.Tensor, gc: GCParams, *, layer_norm: bool = True, ln_eps: float = 1e-5
) -> torch.Tensor:
    """GC's transformed context v [..., C] of x [..., C, H, W]: ``W2 relu(LN(W1 ctx + b1)) + b2``."""
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError(
            f"the global context block needs x of shape [..., C, H, W], got "
            f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    gc = _check_gc(gc, x.shape[-3])
    att = global_context_attention_reference(x, gc.key_weight, gc.key_bias)  # [..., HW]
    ctx = torch.einsum("...cp,...p->...c", x.flatten(-2), att)  # [..., C]
    return global_context_transform_reference(ctx, gc, layer_norm=layer_norm, ln_eps=ln_eps)


def global_context_transform_reference(
    ctx: torch.Tensor, gc: GCParams, *, layer_norm: bool = True, ln_eps: float = 1e-5
) -> torch.Tensor:
    """GC's transform of the pooled context ctx [..., C]: ``W2 relu(LN(W1 ctx + b1)) + b2``."""
    hidden = F.linear(ctx, gc.down_weight, gc.down_bias)  # [..., C // r]
    if layer_norm:
        # over the C // r features of each context vector, as GCNet's LayerNorm([C // r, 1, 1])
        hidden = F.layer_norm(hidden, (hidden.shape[-1],), gc.ln_weight, gc.ln_bias, ln_eps)
    return F.linear(torch.relu(hidden), gc.up_weight, gc.up_bias)


def global_context_reference(
    x: torch.Tensor, gc: GCParams, *, fusion: str = "add", layer_norm: bool = True, ln_eps: float = 1e-5
) -> torch.Tensor:
    """The GC block on x [..., C, H, W] (each [C, H, W] slice on its own): ``x + v`` or ``x * sig(v)``.

    Args:
        x (torch.Tensor): [..., C, H, W], e.g. [T, B, C, H, W] (one context per (t, b)).
        gc (GCParams): the block's weights.
        fusion (str): ``"add"`` (GCNet's default, ``Xg = x + v``) or ``"mul"`` (``Xg = x * sig(v)``).
            Default: ``"add"`` (INFERRED).
        layer_norm (bool): LayerNorm over the C // r hidden features (affine when ``gc.ln_weight`` /
            ``gc.ln_bias`` are given). Default: ``True`` (INFERRED, as GCNet).
        ln_eps (float): the LayerNorm's epsilon. Default: ``1e-5``.
    """
    check_option(fusion, GC_FUSIONS, "gc_fusion")
    return global_context_fusion(
        x, global_context_vector_reference(x, gc, layer_norm=layer_norm, ln_eps=ln_eps), fusion
    )


def global_context_fusion(x: torch.Tensor, v: torch.Tensor, fusion: str) -> torch.Tensor:
    """The GC block's output from x [..., C, H, W] and its transformed context v [..., C]."""
    v = v.to(x.dtype)[..., None, None]
    return x + v if fusion == "add" else x * torch.sigmoid(v)


def step_attention_reference(
    a: torch.Tensor, b: torch.Tensor, sa: SAParams, *, alpha: float = 2.0, gate: str = "sigmoid"
) -> torch.Tensor:
    """Step attention of one time step: the gated sum of A = a H_{t-1} and B = b Xg_t, each [B, C, H, W].

    ``z = Ws2 relu(Ws1 mean_hw(A + B))`` [B, 2C] = (z_a, z_b), then by ``gate``:

    - ``"sigmoid"``: ``alpha sig(z_a) A + alpha sig(z_b) B`` (the inferred design; alpha on the gate and alpha on the
      output are the same thing here);
    - ``"softmax"``: the two branches compete per (b, c): ``alpha (w_a A + w_b B)``, (w_a, w_b) =
      softmax(z_a, z_b);
    - ``"scaled_logits"``: alpha scales the logits: ``sig(alpha z_a) A + sig(alpha z_b) B``.

    With Ws2 = 0 and alpha = 2, "sigmoid" and "softmax" give exactly A + B; "scaled_logits" gives
    (A + B) / 2.
    """
    check_option(gate, SA_GATES, "sa_gate")
    C = a.shape[-3]
    _check_sa(sa, C)
    g_a, g_b = step_attention_gates((a + b).mean(dim=(-2, -1)), sa, alpha=alpha, gate=gate)
    return g_a[..., None, None] * a + g_b[..., None, None] * b


def step_attention_gates(
    pooled: torch.Tensor, sa: SAParams, *, alpha: float = 2.0, gate: str = "sigmoid"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The step attention's gates (g_a, g_b), each [B, C], from ``pooled`` = mean_hw(A + B) [B, C]."""
    C = pooled.shape[-1]
    z = F.linear(torch.relu(F.linear(pooled, sa.w1)), sa.w2)  # [B, 2C]
    z_a, z_b = z[..., :C], z[..., C:]
    if gate == "sigmoid":
        return alpha * torch.sigmoid(z_a), alpha * torch.sigmoid(z_b)
    if gate == "softmax":
        w = torch.softmax(torch.stack([z_a, z_b]), dim=0)
        return alpha * w[0], alpha * w[1]
    return torch.sigmoid(alpha * z_a), torch.sigmoid(alpha * z_b)


def staa_coefficients(m: torch.Tensor, n: torch.Tensor, mapping: str = "raw") -> tuple[torch.Tensor, torch.Tensor]:
    """The charge coefficients (a, b) of ``U = a H + b X`` from the learnable M and N.

    ``"raw"``: a = M, b = N (the literal reading of Eq. 6; with M = 2 a negative potential doubles each step).
    ``"tanh"``: a = tanh(M), b = tanh(N), both bounded to (-1, 1) so the state cannot grow without input; the
    initial values become tanh(2) = 0.964 and tanh(0.1) = 0.0997.
    """
    check_option(mapping, COEFFICIENT_MAPS, "coefficient_map")
    if mapping == "raw":
        return m, n
    return torch.tanh(m), torch.tanh(n)


def draw_drop_mask(
    T: int,
    B: int,
    drop_prob: float,
    *,
    granularity: str = "step",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A TSRD mask: True where a step (``"step"``: [T], shared by the batch) or a (step, sample)
    (``"sample"``: [T, B]) drops the step attention; each entry is True with probability ``drop_prob``.

    With a ``generator`` the draw uses it (on the generator's device; the mask is then moved to ``device``),
    otherwise the global RNG of ``device``.
    """
    check_option(granularity, TSRD_GRANULARITIES, "tsrd_granularity")
    drop_prob = check_probability(drop_prob)
    shape = (T,) if granularity == "step" else (T, B)
    if generator is not None:
        u = torch.rand(shape, generator=generator, device=generator.device)
    else:
        u = torch.rand(shape, device=device)
    return (u < drop_prob).to(device) if device is not None else u < drop_prob


def check_probability(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= float(p) <= 1.0):
        raise ValueError(f"drop_prob must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_drop_mask(mask: object, T: int, B: int, device: torch.device) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"drop_mask must be a bool tensor of shape [T] or [T, B], got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"drop_mask must be a bool tensor (True = drop the step attention), got {mask.dtype}")
    if tuple(mask.shape) not in ((T,), (T, B)):
        raise ValueError(f"drop_mask must have shape [T] = [{T}] or [T, B] = [{T}, {B}], got {list(mask.shape)}")
    mask = mask.to(device)
    # one [B or 1, 1, 1, 1] selector per step
    return mask.reshape(T, -1, 1, 1, 1)


def staa_features_reference(
    x: torch.Tensor, params: STAAParams, *, gc_fusion: str = "add", gc_layer_norm: bool = True, ln_eps: float = 1e-5
) -> torch.Tensor:
    """The spatial input port of STAA-LIF: PE then GC on x [T, B, C, H, W], in x's dtype (the state dtype
    inside ``staa_lif_reference``); the parts that are None in ``params`` are skipped."""
    feat = x
    if params.position is not None:
        feat = position_encoding_reference(feat, params.position.to(x.dtype))
    if params.gc is not None:
        gc = GCParams(*(None if t is None else t.to(x.dtype) for t in params.gc))
        feat = global_context_reference(feat, gc, fusion=gc_fusion, layer_norm=gc_layer_norm, ln_eps=ln_eps)
    return feat


def staa_lif_reference(
    x: torch.Tensor,
    params: STAAParams,
    *,
    alpha: float = 2.0,
    sa_gate: str = "sigmoid",
    gc_fusion: str = "add",
    gc_layer_norm: bool = True,
    ln_eps: float = 1e-5,
    coefficient_map: str = "raw",
    drop_mask: torch.Tensor | None = None,
    drop_prob: float = 0.0,
    generator: torch.Generator | None = None,
    tsrd_scope: str = "step_attention",
    tsrd_granularity: str = "step",
    v_threshold: float = 1.0,
    v_reset: float = 0.0,
    detach_reset: bool = False,
    # B008: one shared default surrogate, as in SpikingJelly's signatures (surrogates are never mutated)
    surrogate_function: Surrogate = Rectangle(1.0),  # noqa: B008
    v_init: torch.Tensor | None = None,
    return_final_state: bool = False,
    features: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """STAA-LIF over T steps (INFERRED design; see the module docstring for the equations).

    PE and GC do not depend on the recurrence, so they run on the whole sequence first; the loop then
    aggregates, fires and resets step by step. The state is fp32 for fp32 / fp16 / bf16 input and fp64 for
    fp64 input; the parameters are cast to it.

    TSRD: ``drop_mask`` (bool, [T] or [T, B], True = dropped) is used as given. Without it, ``drop_prob > 0``
    draws one with ``draw_drop_mask(T, B, drop_prob, granularity=tsrd_granularity, generator=generator)``
    (the global RNG when ``generator`` is None). ``drop_prob = 0`` and no mask: nothing is dropped (eval).

    Args:
        x (torch.Tensor): [T, B, C, H, W], the conv + BN output.
        params (STAAParams): P, GC weights, SA weights, M, N (see ``STAAParams``); None parts are skipped.
        alpha (float): the step attention's scale. Default: ``2.0``.
        sa_gate (str): ``"sigmoid"``, ``"softmax"`` or ``"scaled_logits"`` (``step_attention_reference``).
            Default: ``"sigmoid"`` (INFERRED).
        gc_fusion (str): ``"add"`` or ``"mul"``. Default: ``"add"`` (INFERRED).
        gc_layer_norm (bool): LayerNorm inside the GC transform. Default: ``True`` (INFERRED).
        ln_eps (float): its epsilon. Default: ``1e-5``.
        coefficient_map (str): ``"raw"`` (a = M, b = N) or ``"tanh"`` (a = tanh M, b = tanh N).
            Default: ``"raw"`` (INFERRED).
        drop_mask (torch.Tensor, Optional): the TSRD mask. Default: ``None``.
        drop_prob (float): probability to draw a mask with when ``drop_mask`` is None. Default: ``0.0``.
        generator (torch.Generator, Optional): the RNG for that draw. Default: ``None`` (global RNG).
        tsrd_scope (str): what a dropped step loses: ``"step_attention"`` (U = A + B with B from the PE + GC
            input) or ``"all"`` (also PE and GC: U = a H + b X). Default: ``"step_attention"`` (INFERRED).
        tsrd_granularity (str): shape of a drawn mask, ``"step"`` ([T], shared by the batch) or
            ``"sample"`` ([T, B]). Default: ``"step"`` (INFERRED).
        v_threshold (float): firing threshold; fires on U >= v_threshold. Default: ``1.0``.
        v_reset (float): potential after a spike (hard reset). Default: ``0.0`` (INFERRED).
        detach_reset (bool): no gradient through S_t in the reset. Default: ``False`` (INFERRED).
        surrogate_function (Surrogate): the spike's derivative. Default: ``Rectangle(1.0)`` (the paper's).
        v_init (torch.Tensor, Optional): H_0 [B, C, H, W]. Default: ``None`` (zeros).
        return_final_state (bool): also return H_T. Default: ``False``.
        features (torch.Tensor, Optional): the PE + GC output [T, B, C, H, W] in the state dtype, computed
            elsewhere (a fused backend's GC sweep); the loop then starts from it. Default: ``None``.

    Returns:
        torch.Tensor: spikes S [T, B, C, H, W] in x's dtype, or (S, H_T) with H_T in the state dtype.
    """
    _check_5d(x, "the STAA-LIF")
    if not isinstance(params, STAAParams):
        raise TypeError(f"params must be an STAAParams, got {type(params).__name__}")
    for value, allowed, name in (
        (sa_gate, SA_GATES, "sa_gate"),
        (gc_fusion, GC_FUSIONS, "gc_fusion"),
        (coefficient_map, COEFFICIENT_MAPS, "coefficient_map"),
        (tsrd_scope, TSRD_SCOPES, "tsrd_scope"),
        (tsrd_granularity, TSRD_GRANULARITIES, "tsrd_granularity"),
    ):
        check_option(value, allowed, name)
    # abs(alpha) < inf rather than math.isfinite: the same test, which torch.compile also traces for a float it
    # keeps symbolic (dynamic=True)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not abs(alpha) < math.inf:
        raise ValueError(f"alpha must be a finite float, got {alpha!r}")
    drop_prob = check_probability(drop_prob)
    T, B, C, H, W = x.shape
    if params.position is not None:
        _check_position(params.position, T, C, H, W)
    if params.gc is not None:
        _check_gc(params.gc, C)
    if params.sa is not None:
        _check_sa(params.sa, C)
    _check_coefficient(params.m, "m (M)", C, H, W)
    _check_coefficient(params.n, "n (N)", C, H, W)
    if drop_mask is not None and generator is not None:
        raise ValueError("pass either drop_mask or generator, not both (the mask would ignore the generator)")
    if v_init is not None:
        _check_shape(v_init, (B, C, H, W), "v_init")

    dtype = state_dtype(x.dtype)

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(dtype)

    xs = x.to(dtype)
    if features is not None:
        _check_shape(features, tuple(x.shape), "features")
        feat = features.to(dtype)
    else:
        feat = staa_features_reference(xs, params, gc_fusion=gc_fusion, gc_layer_norm=gc_layer_norm, ln_eps=ln_eps)
    sa = None if params.sa is None else SAParams(*(cast(t) for t in params.sa))
    a, b = (_per_channel(c) for c in staa_coefficients(cast(params.m), cast(params.n), coefficient_map))

    if drop_mask is None and drop_prob > 0:
        drop_mask = draw_drop_mask(T, B, drop_prob, granularity=tsrd_granularity, generator=generator, device=x.device)
    mask = None if drop_mask is None else check_drop_mask(drop_mask, T, B, x.device)

    h = torch.zeros_like(xs[0]) if v_init is None else v_init.to(dtype)
    spikes = []
    for t in range(T):
        y = feat[t]
        if mask is not None and tsrd_scope == "all":
            y = torch.where(mask[t], xs[t], y)  # a dropped step also skips PE and GC
        a_t = a * h
        b_t = b * y
        u = a_t + b_t
        if sa is not None:
            gated = step_attention_reference(a_t, b_t, sa, alpha=alpha, gate=sa_gate)
            u = gated if mask is None else torch.where(mask[t], u, gated)
        s = surrogate_function.spike(u - v_threshold)
        s_reset = s.detach() if detach_reset else s
        h = u * (1.0 - s_reset) + v_reset * s_reset
        spikes.append(s)
    out = torch.stack(spikes).to(x.dtype)
    return (out, h) if return_final_state else out
