"""Spikformer (Zhou et al., ICLR 2023), official-weight compatible (docs/spiking_transformers.md "Spikformer").

Source of the facts: ZK-Zhou/spikformer @ 6212689, ``cifar10/model.py`` (``Spikformer``: tokens [T, B, N, C],
Linear + BatchNorm1d projections, ``((q k^T) * 0.125) v``) and ``imagenet/model.py`` (also ``Spikformer`` there,
here ``SpikformerImageNet``: [T, B, C, H, W], 1x1 Conv projections, ``(q (k^T v)) * 0.125``, T fixed to 4 in
its forward). Same parameter names, creation order and initialisation as the official classes, so
``load_state_dict(official_state_dict, strict=True)`` loads their checkpoints; the unused ``norm1`` / ``norm2``
LayerNorms are kept for that. The neurons are ``lif_node`` (MultiStepLIFNode semantics) on ``backend``.

Each attention module's ``_attention_core(q, k, v)`` is the attention with its LIF, on spikes [T, B, C, N]:
the one call a fused SSA op replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..nn.bn_lif import bn_neuron
from ..nn.spike_layers import SpikeLinear
from .transformer_blocks import (
    FUSED_ATTENTION_BACKENDS,
    HeadedAttention,
    RepeatedImageClassifier,
    ResidualBlock,
    add_conv_bn_lif,
    add_mlp_layers,
    add_sps_stages,
    conv_bn_lif,
    lif_node,
    patch_geometry,
    per_step,
    pointwise_conv,
    qkv_layers,
)

__all__ = ["Spikformer", "SpikformerImageNet", "spikformer", "SSA", "Block", "SPS", "SSAImageNet", "BlockImageNet"]


def _linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Tokens [T, B, N, C]: the Linear on the last dim, BatchNorm1d over the channels of the T * B * N tokens."""
    y = linear(x.flatten(0, 1))
    y = bn(y.transpose(-1, -2)).transpose(-1, -2)
    return y.reshape(*x.shape[:3], y.shape[-1])


def _linear_bn_lif(linear: nn.Linear, bn: nn.BatchNorm1d, lif: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``lif(bn(linear(x)))`` on tokens [T, B, N, C]. On the fused backends BatchNorm and the LIF run as one
    ``bn_lif`` op (``bn_neuron``) over the [T, B, C, N] view, so BatchNorm's output is never stored; elsewhere
    the modules' own calls (docs/spiking_transformers.md "Fused blocks")."""
    if lif.backend not in FUSED_ATTENTION_BACKENDS:
        return lif(_linear_bn(linear, bn, x))
    y = linear(x.flatten(0, 1)).reshape(*x.shape[:3], -1)
    return bn_neuron(bn, lif, y.transpose(-1, -2)).transpose(-1, -2)


def _spike_linear(in_features: int, out_features: int, backend: str) -> nn.Linear:
    """The Linear of a binary input: ``SpikeLinear`` (input saved at 1 bit, the same parameters and keys) on the
    fused backends, ``nn.Linear`` elsewhere."""
    if backend in FUSED_ATTENTION_BACKENDS:
        return SpikeLinear(in_features, out_features, backend=backend, check=False)
    return nn.Linear(in_features, out_features)


class MLP(nn.Module):
    """Spikformer CIFAR's MLP on tokens [T, B, N, C]: Linear -> BN -> LIF, twice."""

    def __init__(self, in_features, hidden_features=None, out_features=None, drop=0.0, *, backend: str = "auto"):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1_linear = nn.Linear(in_features, hidden_features)
        self.fc1_bn = nn.BatchNorm1d(hidden_features)
        self.fc1_lif = lif_node(backend)
        self.fc2_linear = _spike_linear(hidden_features, out_features, backend)  # fc1's spikes in
        self.fc2_bn = nn.BatchNorm1d(out_features)
        self.fc2_lif = lif_node(backend)
        self.c_hidden = hidden_features
        self.c_output = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _linear_bn_lif(self.fc1_linear, self.fc1_bn, self.fc1_lif, x)
        return _linear_bn_lif(self.fc2_linear, self.fc2_bn, self.fc2_lif, x)


class SSA(HeadedAttention):
    """Spikformer CIFAR's spiking self-attention on tokens [T, B, N, C] (N x N attention map, scale 0.125)."""

    order = "qk_scale_v"

    def __init__(
        self,
        dim,
        num_heads=8,
        qkv_bias=False,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
        sr_ratio=1,
        *,
        backend: str = "auto",
    ):
        super().__init__(dim, num_heads)
        self.q_linear = nn.Linear(dim, dim)
        self.q_bn = nn.BatchNorm1d(dim)
        self.q_lif = lif_node(backend)
        self.k_linear = nn.Linear(dim, dim)
        self.k_bn = nn.BatchNorm1d(dim)
        self.k_lif = lif_node(backend)
        self.v_linear = nn.Linear(dim, dim)
        self.v_bn = nn.BatchNorm1d(dim)
        self.v_lif = lif_node(backend)
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_linear = _spike_linear(dim, dim, backend)  # the attention's spikes in
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = lif_node(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = _linear_bn_lif(self.q_linear, self.q_bn, self.q_lif, x)
        k = _linear_bn_lif(self.k_linear, self.k_bn, self.k_lif, x)
        v = _linear_bn_lif(self.v_linear, self.v_bn, self.v_lif, x)
        x = self._attention_core(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)).transpose(-1, -2)
        return _linear_bn_lif(self.proj_linear, self.proj_bn, self.proj_lif, x)


class Block(ResidualBlock):
    """``x + attn(x)``, then ``x + mlp(x)``; ``norm1`` / ``norm2`` exist (checkpoint keys) but are not applied."""

    attention_cls = SSA
    mlp_cls = MLP


class SPS(nn.Module):
    """Spikformer CIFAR's spiking patch splitting: four 3x3 Conv + BN + LIF (two max pools), plus the relative
    position embedding ``rpe_lif(rpe_bn(rpe_conv(x))) + x``; returns tokens [T, B, N, C]."""

    pools = (False, False, True, True)

    def __init__(self, img_size_h=128, img_size_w=128, patch_size=4, in_channels=2, embed_dims=256, *, backend="auto"):
        super().__init__()
        patch_geometry(self, img_size_h, img_size_w, patch_size, in_channels)
        widths = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims]
        add_sps_stages(self, widths, lambda: lif_node(backend), self.pools)
        self.rpe_conv = nn.Conv2d(embed_dims, embed_dims, kernel_size=3, stride=1, padding=1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(embed_dims)
        self.rpe_lif = lif_node(backend)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[T, B, C_in, H, W] -> embedded spikes + position embedding, [T, B, C, H', W']."""
        for suffix, pool in zip(("", "1", "2", "3"), self.pools, strict=True):
            x = per_step(getattr(self, "proj_bn" + suffix), per_step(getattr(self, "proj_conv" + suffix), x))
            x = getattr(self, "proj_lif" + suffix)(x)
            if pool:
                x = per_step(getattr(self, "maxpool" + suffix), x)
        feat = x
        x = self.rpe_lif(per_step(self.rpe_bn, per_step(self.rpe_conv, x)))
        return x + feat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(-2).transpose(-1, -2)


class Spikformer(RepeatedImageClassifier):
    """Spikformer, CIFAR / official ``cifar10/model.py``: ``forward`` takes images [B, C, H, W], repeats them
    over ``T`` steps and returns logits [B, num_classes] (the head on the token and time mean).

    Args:
        img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, num_heads, mlp_ratios,
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, depths, sr_ratios, T:
            the official keywords (``embed_dims``, ``num_heads``, ``mlp_ratios``, ``depths``, ``sr_ratios`` are
            scalars in the official use; dropout and drop path are built but never applied there).
        backend (str, Optional): backend of every neuron ("auto", "torch", "triton", "native", "cupy").
            Default: "auto".
    """

    _sps = SPS
    _block = Block

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dims: int = 512,
        num_heads: int = 8,
        mlp_ratios: int = 4,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        depths: int = 8,
        sr_ratios: int = 1,
        T: int = 4,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        opts = (embed_dims, num_heads, mlp_ratios, qkv_bias, qk_scale, drop_rate, attn_drop_rate, norm_layer, sr_ratios)
        patch_embed = self._sps(img_size_h, img_size_w, patch_size, in_channels, embed_dims, backend=backend)
        self._build_trunk(patch_embed, self._block, opts, num_classes, depths, drop_path_rate, T, backend)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.mean(2)


def spikformer(pretrained: bool = False, **kwargs) -> Spikformer:
    """The official registry entry ``spikformer(**kwargs)`` of ``cifar10/model.py`` (no pretrained download)."""
    if pretrained:
        raise ValueError("spikformer: pretrained=True is not supported; load the checkpoint with load_state_dict")
    return Spikformer(**kwargs)


class MLPImageNet(nn.Module):
    """Spikformer ImageNet's MLP on [T, B, C, H, W]: 1x1 Conv2d -> BN -> LIF, twice."""

    def __init__(self, in_features, hidden_features=None, out_features=None, drop=0.0, *, backend: str = "auto"):
        super().__init__()
        add_mlp_layers(
            self, ("fc1", "fc2"), in_features, hidden_features, out_features, pointwise_conv(nn.Conv2d),
            nn.BatchNorm2d, lambda: lif_node(backend),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_bn_lif(self, "fc2", conv_bn_lif(self, "fc1", x))


class SSAImageNet(HeadedAttention):
    """Spikformer ImageNet's SSA on [T, B, C, H, W] (d x d ordering ``(q (k^T v)) * 0.125``).

    ``forward(x, res_attn)`` returns ``(out, v)`` as the official module (``res_attn`` is unused there too;
    ``v`` is the value spikes split into heads, [T, B, heads, N, C // heads]).
    """

    order = "kv_q_scale"

    def __init__(
        self,
        dim,
        num_heads=8,
        qkv_bias=False,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
        sr_ratio=1,
        *,
        backend: str = "auto",
    ):
        super().__init__(dim, num_heads)
        add_conv_bn_lif(self, ("q", "k", "v"), *qkv_layers(dim, backend))
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = lif_node(backend)

    def forward(self, x: torch.Tensor, res_attn: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        x = x.flatten(3)
        q, k, v = (conv_bn_lif(self, n, x) for n in ("q", "k", "v"))
        x = self._attention_core(q, k, v)
        x = self.proj_lif(per_step(self.proj_bn, per_step(self.proj_conv, x)).reshape(shape))
        T, B, C, N = v.shape
        return x, v.transpose(-1, -2).reshape(T, B, N, self.num_heads, C // self.num_heads).permute(0, 1, 3, 2, 4)


class BlockImageNet(Block):
    """Spikformer ImageNet's block: ``forward(x, res_attn)`` -> ``(x, v)``."""

    attention_cls = SSAImageNet
    mlp_cls = MLPImageNet

    def forward(self, x: torch.Tensor, res_attn: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        x_attn, attn = self.attn(x, res_attn)
        x = x + x_attn
        return x + self.mlp(x), attn


class SPSImageNet(SPS):
    """Spikformer ImageNet's patch splitting: a max pool after each of the four conv stages (16x down);
    returns ``(x [T, B, C, H / 16, W / 16], (H / patch, W / patch))``."""

    pools = (True, True, True, True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        H, W = x.shape[-2:]
        return self.features(x), (H // self.patch_size[0], W // self.patch_size[1])


class SpikformerImageNet(Spikformer):
    """Spikformer, ImageNet / official ``imagenet/model.py`` (class ``Spikformer`` there): T is fixed to 4 in
    the forward, as in the official code; the other keywords as ``Spikformer`` (no ``T``)."""

    _sps = SPSImageNet
    _block = BlockImageNet
    T_FIXED = 4

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dims: int = 512,
        num_heads: int = 8,
        mlp_ratios: int = 4,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        depths: int = 8,
        sr_ratios: int = 1,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            img_size_h,
            img_size_w,
            patch_size,
            in_channels,
            num_classes,
            embed_dims,
            num_heads,
            mlp_ratios,
            qkv_bias,
            qk_scale,
            drop_rate,
            attn_drop_rate,
            drop_path_rate,
            norm_layer,
            depths,
            sr_ratios,
            self.T_FIXED,
            backend=backend,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.patch_embed(x)
        attn = None
        for blk in self.block:
            x, attn = blk(x, attn)
        return x.flatten(3).mean(3)
