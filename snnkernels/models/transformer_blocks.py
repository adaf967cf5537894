"""Pieces shared by the spiking transformers of ``snnkernels.models`` (docs/spiking_transformers.md).

- ``lif_node`` / ``plif_node``: SpikingJelly 0.0.0.0.x's ``MultiStepLIFNode(tau=2.0, detach_reset=True)`` and
  ``MultiStepParametricLIFNode(init_tau=2.0, detach_reset=True)``, the neurons of every official repository,
  as this library's fused multi-step neurons (docs/spiking_transformers.md "The neuron").
- ``per_step``: a stateless layer (conv, BN, pool) applied to every step of [T, B, ...].
- ``heads`` / ``merge_heads``: [T, B, C, N] <-> the official head split [T, B, heads, N, C // heads].
- ``init_linear_layernorm``: the official ``_init_weights`` of Spikformer, Spikingformer, Meta-SpikeFormer
  and QKFormer (timm's ``trunc_normal_(std=.02)`` is ``torch.nn.init.trunc_normal_`` with the same bounds).
- ``ssa_core``: ``scale * q k^T v`` per head in either official ordering, the eager attention core that the
  blocks' ``_attention_core`` methods call.
- ``fused_attention_lif`` / ``split_heads_view`` / ``merge_heads_view``: what ``_attention_core`` needs to call
  the fused attention ops of ``snnkernels.functional`` (docs/spiking_transformers.md "The attention core").
- ``HeadedAttention``: the base of every official attention module (head check, ``dim`` / ``num_heads`` /
  ``scale``) whose ``_attention_core`` is the SSA one, eager or fused.
- ``add_conv_bn_lif`` / ``conv_bn_lif`` / ``lif_conv_bn`` / ``add_mlp_layers``: the official ``<name>_conv`` /
  ``<name>_bn`` / ``<name>_lif`` triples (q, k, v and the two-layer MLPs).
- ``ResidualBlock``: the official ``x + attn(x)``, ``x + mlp(x)`` block; ``patch_geometry`` / ``add_sps_stages``:
  the patch embedders' bookkeeping and conv stages.
- ``drop_path_schedule`` / ``block_list`` / ``classifier_head`` / ``RepeatedImageClassifier``: the network
  trunk the official classifiers share (stochastic-depth rates, the block stack, the head, images repeated
  over T).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..functional import spiking_self_attention
from ..nn.neuron import LIFNode, ParametricLIFNode

__all__ = [
    "SPIKE_MODES",
    "lif_node",
    "plif_node",
    "spike_node",
    "per_step",
    "heads",
    "merge_heads",
    "init_trunc_normal",
    "init_linear_layernorm",
    "ssa_core",
    "FUSED_ATTENTION_BACKENDS",
    "fused_attention_lif",
    "split_heads_view",
    "merge_heads_view",
    "HeadedAttention",
    "add_conv_bn_lif",
    "qkv_layers",
    "conv_bn_lif",
    "add_mlp_layers",
    "lif_conv_bn",
    "pointwise_conv",
    "ResidualBlock",
    "patch_geometry",
    "add_sps_stages",
    "drop_path_schedule",
    "block_list",
    "classifier_head",
    "RepeatedImageClassifier",
]

SPIKE_MODES = ("lif", "plif")


def lif_node(backend: str, v_threshold: float = 1.0) -> LIFNode:
    """``MultiStepLIFNode(tau=2.0, v_threshold=v_threshold, detach_reset=True)``: hard reset to 0, input decayed,
    surrogate Sigmoid(alpha=4), every forward starting from rest (the official loops call ``reset_net``)."""
    return LIFNode(tau=2.0, v_threshold=v_threshold, detach_reset=True, step_mode="m", backend=backend, stateful=False)


def plif_node(backend: str, v_threshold: float = 1.0) -> ParametricLIFNode:
    """``MultiStepParametricLIFNode(init_tau=2.0, v_threshold=v_threshold, detach_reset=True)``: the learned
    rate ``sigmoid(w)`` under the official key ``w``."""
    return ParametricLIFNode(
        init_tau=2.0, v_threshold=v_threshold, detach_reset=True, step_mode="m", backend=backend, stateful=False
    )


def spike_node(spike_mode: str, backend: str, v_threshold: float = 1.0) -> LIFNode | ParametricLIFNode:
    """The neuron of Spike-Driven Transformer's ``spike_mode`` ("lif" or "plif")."""
    if spike_mode == "lif":
        return lif_node(backend, v_threshold)
    if spike_mode == "plif":
        return plif_node(backend, v_threshold)
    raise ValueError(
        f"spike_mode must be one of {SPIKE_MODES} (the modes the released blocks build), got {spike_mode!r}"
    )


def per_step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module`` on [T * B, ...], the result reshaped back to [T, B, ...]."""
    y = module(x.flatten(0, 1))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


def heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[T, B, C, N] -> [T, B, heads, N, C // heads] (head h owns channels h * d ... h * d + d - 1)."""
    T, B, C, N = x.shape
    return x.transpose(-1, -2).reshape(T, B, N, num_heads, C // num_heads).permute(0, 1, 3, 2, 4)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[T, B, heads, N, d] -> [T, B, heads * d, N]."""
    T, B, h, N, d = x.shape
    return x.transpose(3, 4).reshape(T, B, h * d, N)


def init_trunc_normal(m: nn.Module, weighted: type, normed: type) -> None:
    """The official ``_init_weights`` rule: a ``weighted`` layer's weight truncated normal (std .02, cut at +-2)
    and bias 0; a ``normed`` layer's weight 1 and bias 0; any other module untouched."""
    if isinstance(m, weighted):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, normed):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)


def init_linear_layernorm(m: nn.Module) -> None:
    """Linear weights truncated normal (std .02, cut at +-2), Linear biases 0, LayerNorm weight 1 / bias 0."""
    init_trunc_normal(m, nn.Linear, nn.LayerNorm)


def ssa_core(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, scale: float, order: str
) -> torch.Tensor:
    """``scale * q k^T v`` per head on spikes [T, B, C, N], returned as [T, B, C, N] (before the attention LIF).

    ``order`` is the official one: ``"qk_scale_v"`` (``((q k^T) * scale) v``, Spikformer CIFAR),
    ``"qk_v_scale"`` (``((q k^T) v) * scale``, Spikingformer) or ``"kv_q_scale"`` (``(q (k^T v)) * scale``, the
    ImageNet models, Meta-SpikeFormer, QKFormer). On 0/1 spikes every order gives the same exact integers times a
    power of two (docs/spiking_transformers.md "Orderings"); the backward's real-valued products follow the order.
    """
    qh, kh, vh = heads(q, num_heads), heads(k, num_heads), heads(v, num_heads)
    if order == "qk_scale_v":
        out = ((qh @ kh.transpose(-2, -1)) * scale) @ vh
    elif order == "qk_v_scale":
        out = ((qh @ kh.transpose(-2, -1)) @ vh) * scale
    elif order == "kv_q_scale":
        out = (qh @ (kh.transpose(-2, -1) @ vh)) * scale
    else:
        raise ValueError(f"unknown SSA order {order!r}")
    return merge_heads(out)


# The module backends whose attention goes through the fused ops of snnkernels.functional (which resolve "auto");
# "torch" keeps the eager official ordering, "native" / "cupy" have no fused attention (eager core, their LIF).
FUSED_ATTENTION_BACKENDS = ("auto", "triton")


def fused_attention_lif(lif: nn.Module) -> dict | None:
    """The LIF keywords (and ``backend``) of ``snnkernels.functional``'s attention ops reproducing ``lif``, or
    None where the eager core must stay: a backend outside ``FUSED_ATTENTION_BACKENDS``, a learnable tau (PLIF),
    a strict threshold or a start away from rest, which the fused ops do not model."""
    if type(lif) is not LIFNode or lif.backend not in FUSED_ATTENTION_BACKENDS:
        return None
    if lif.strict_threshold or lif.stateful or lif.step_mode != "m" or lif.v_init_value != (lif.v_reset or 0.0):
        return None
    return dict(
        tau=lif.tau,
        v_threshold=float(lif.v_threshold),
        v_reset=lif.v_reset,
        decay_input=lif.decay_input,
        detach_reset=lif.detach_reset,
        surrogate_function=lif.surrogate_function,
        backend=lif.backend,
    )


def split_heads_view(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[T, B, C, N] (any strides whose C dim can be split) -> the view [T, B, heads, N, d], no copy."""
    T, B, C, N = x.shape
    return x.view(T, B, num_heads, C // num_heads, N).transpose(-1, -2)


def merge_heads_view(x: torch.Tensor) -> torch.Tensor:
    """[T, B, heads, N, d] -> [T, B, heads * d, N] (a view when ``x`` came from ``split_heads_view``'s layout)."""
    T, B, h, N, d = x.shape
    return x.transpose(-1, -2).reshape(T, B, h * d, N)


class HeadedAttention(nn.Module):
    """Base of the official attention modules: ``dim`` split into ``num_heads`` heads, ``scale`` 0.125, and the
    SSA ``_attention_core`` in the class's official ``order`` (its LIF is the subclass's ``attn_lif``)."""

    order = "kv_q_scale"

    def __init__(self, dim: int, num_heads: int, scaled: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} should be divided by num_heads {num_heads}.")
        self.dim = dim
        self.num_heads = num_heads
        if scaled:  # the Q-K token attention has no scale
            self.scale = 0.125

    def _attention_core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``attn_lif(scale * q k^T v)`` per head in ``order`` on spikes [T, B, C, N] -> spikes [T, B, C, N]."""
        fused = fused_attention_lif(self.attn_lif)
        if fused is None:  # backend "torch" (the official ordering), "native", "cupy"
            return self.attn_lif(ssa_core(q, k, v, self.num_heads, self.scale, self.order))
        q, k, v = (split_heads_view(x, self.num_heads) for x in (q, k, v))
        return merge_heads_view(spiking_self_attention(q, k, v, scale=self.scale, check=False, **fused))


def add_conv_bn_lif(
    module: nn.Module,
    names: tuple[str, ...],
    conv: Callable[[], nn.Module],
    bn: Callable[[], nn.Module],
    lif: Callable[[], nn.Module],
) -> None:
    """Register ``<name>_conv``, ``<name>_bn``, ``<name>_lif`` on ``module`` for each name, in the official
    creation order (the conv weights draw from the RNG in that order)."""
    for name in names:
        setattr(module, f"{name}_conv", conv())
        setattr(module, f"{name}_bn", bn())
        setattr(module, f"{name}_lif", lif())


def qkv_layers(
    dim: int, backend: str
) -> tuple[Callable[[], nn.Module], Callable[[], nn.Module], Callable[[], nn.Module]]:
    """The factories of the official q / k / v triples on tokens [T, B, C, N]: a bias-free 1x1 ``Conv1d``,
    ``BatchNorm1d`` and ``lif_node`` (for ``add_conv_bn_lif``)."""
    return (
        lambda: nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False),
        lambda: nn.BatchNorm1d(dim),
        lambda: lif_node(backend),
    )


def conv_bn_lif(module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """``<name>_lif(<name>_bn(<name>_conv(x)))`` of ``module``, the conv and BN per step of [T, B, ...]."""
    conv, bn, lif = (getattr(module, f"{name}_{part}") for part in ("conv", "bn", "lif"))
    return lif(per_step(bn, per_step(conv, x)))


def add_mlp_layers(
    module: nn.Module,
    names: tuple[str, str],
    in_features: int,
    hidden_features: int | None,
    out_features: int | None,
    conv: Callable[[int, int], nn.Module],
    bn: Callable[[int], nn.Module],
    lif: Callable[[], nn.Module],
    lif_first: bool = False,
) -> None:
    """The official two-layer MLP: for each of the two ``names``, ``<name>_conv`` (in -> hidden, then
    hidden -> out; the missing widths default to ``in_features``), ``<name>_bn`` and ``<name>_lif`` (registered
    first with ``lif_first``, as the official classes order their keys); ``c_hidden`` / ``c_output`` stored."""
    out_features = out_features or in_features
    hidden_features = hidden_features or in_features
    for name, cin, cout in zip(names, (in_features, hidden_features), (hidden_features, out_features), strict=True):
        if lif_first:
            setattr(module, f"{name}_lif", lif())
        setattr(module, f"{name}_conv", conv(cin, cout))
        setattr(module, f"{name}_bn", bn(cout))
        if not lif_first:
            setattr(module, f"{name}_lif", lif())
    module.c_hidden = hidden_features
    module.c_output = out_features


def pointwise_conv(cls: type) -> Callable[[int, int], nn.Module]:
    """A factory of the official 1x1 convs with bias: ``cls(cin, cout, kernel_size=1, stride=1)``."""
    return lambda cin, cout: cls(cin, cout, kernel_size=1, stride=1)


def lif_conv_bn(module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """``<name>_bn(<name>_conv(<name>_lif(x)))`` of ``module`` (the spike-driven order), conv and BN per step."""
    conv, bn, lif = (getattr(module, f"{name}_{part}") for part in ("conv", "bn", "lif"))
    return per_step(bn, per_step(conv, lif(x)))


class ResidualBlock(nn.Module):
    """The official block ``x + attn(x)``, then ``x + mlp(x)``: ``attention_cls`` and ``mlp_cls`` built with the
    official arguments; ``norm1`` / ``norm2`` (``norms``) and ``drop_path`` are built for the checkpoint keys and
    the official module tree but never applied, as in the official forward."""

    attention_cls: type[nn.Module]
    mlp_cls: type[nn.Module]
    norms = True

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False, qk_scale: float | None = None,
        drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, sr_ratio: int = 1, *, backend: str = "auto",
    ) -> None:  # fmt: skip
        super().__init__()
        if self.norms:
            self.norm1 = norm_layer(dim)
        self.attn = self.attention_cls(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, sr_ratio, backend=backend)
        self.drop_path = nn.Identity()  # official: DropPath or Identity, never applied in the forward
        if self.norms:
            self.norm2 = norm_layer(dim)
        self.mlp = self.mlp_cls(dim, int(dim * mlp_ratio), drop=drop, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


def patch_geometry(
    module: nn.Module, img_size_h: int, img_size_w: int, patch_size: int | tuple, in_channels: int
) -> None:
    """The official patch embedders' bookkeeping attributes: ``image_size``, ``patch_size`` (a pair), ``C``,
    ``H``, ``W`` (the image over the patch size) and ``num_patches``."""
    module.image_size = [img_size_h, img_size_w]
    module.patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    module.C = in_channels
    module.H, module.W = img_size_h // module.patch_size[0], img_size_w // module.patch_size[1]
    module.num_patches = module.H * module.W


def add_sps_stages(module: nn.Module, widths: list[int], lif: Callable[[], nn.Module], pools: tuple[bool, ...]) -> None:
    """The spiking patch splitting stages of Spikformer and Spike-Driven Transformer: per stage i (key suffix
    "", "1", "2", "3"), ``proj_conv`` (3x3, widths[i] -> widths[i + 1]), ``proj_bn``, ``proj_lif`` and, where
    ``pools[i]``, ``maxpool`` (3x3, stride 2)."""
    for i, suffix in enumerate(("", "1", "2", "3")):
        setattr(module, f"proj_conv{suffix}", nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1, bias=False))
        setattr(module, f"proj_bn{suffix}", nn.BatchNorm2d(widths[i + 1]))
        setattr(module, f"proj_lif{suffix}", lif())
        if pools[i]:
            setattr(module, f"maxpool{suffix}", nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1))


def drop_path_schedule(drop_path_rate: float, depths: int) -> list[float]:
    """The official stochastic-depth rates, linear from 0 to ``drop_path_rate`` over ``depths`` blocks."""
    return [x.item() for x in torch.linspace(0, drop_path_rate, depths)]


def block_list(
    block: Callable[..., nn.Module],
    drop_paths: list[float],
    dim: int,
    num_heads: int,
    mlp_ratio: float,
    qkv_bias: bool,
    qk_scale: float | None,
    drop: float,
    attn_drop: float,
    norm_layer: Callable[[int], nn.Module],
    sr_ratio: int,
    *,
    backend: str,
    numbered: bool = False,
    **extra: object,
) -> nn.ModuleList:
    """One ``block`` per drop-path rate, built with the official positional arguments (``numbered``: each also
    gets its index as ``layer``, Spike-Driven Transformer's hook names)."""
    return nn.ModuleList(
        [
            block(
                dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                qk_scale,
                drop,
                attn_drop,
                rate,
                norm_layer,
                sr_ratio,
                **extra,
                **({"layer": j} if numbered else {}),
                backend=backend,
            )  # fmt: skip
            for j, rate in enumerate(drop_paths)
        ]
    )


def classifier_head(dim: int, num_classes: int) -> nn.Module:
    """The official head: ``nn.Linear(dim, num_classes)``, or ``nn.Identity`` when ``num_classes`` is 0."""
    return nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()


class RepeatedImageClassifier(nn.Module):
    """Images [B, C, H, W] repeated over ``self.T`` steps, ``forward_features`` -> [T, B, C], then ``head`` on the
    time mean -> logits [B, num_classes] (the forward of Spikformer, Spikingformer and QKFormer)."""

    def _build_trunk(
        self,
        patch_embed: nn.Module,
        block: Callable[..., nn.Module],
        options: tuple,
        num_classes: int,
        depths: int,
        drop_path_rate: float,
        T: int,
        backend: str,
    ) -> None:
        """The official trunk: ``patch_embed``, ``depths`` blocks (``options``: the arguments of ``block_list``
        from ``dim`` to ``sr_ratio``), the head, then ``init_linear_layernorm`` over every module."""
        self.T = T
        self.num_classes = num_classes
        self.depths = depths
        self.backend = backend
        self.patch_embed = patch_embed
        self.block = block_list(block, drop_path_schedule(drop_path_rate, depths), *options, backend=backend)
        self.head = classifier_head(options[0], num_classes)
        self.apply(init_linear_layernorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        return self.head(self.forward_features(x).mean(0))
