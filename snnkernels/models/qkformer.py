"""QKFormer (Zhou et al., NeurIPS 2024), official-weight compatible (docs/spiking_transformers.md "QKFormer").

Source of the facts: zhouchenlin2096/QKFormer @ c2a00e8, ``cifar10/model.py`` (class ``spiking_transformer``
behind the ``QKFormer`` registry entry; here the class is ``QKFormer``, ``spiking_transformer`` its alias) and
``imagenet/qkformer.py`` (``hierarchical_spiking_transformer`` and its ``QKFormer_10_384 / _512 / _768``
factories). Early stages: Q-K token attention ``k * LIF(sum over the head's channels of q)``; the last stage:
SSA ``(q (k^T v)) * 0.125``. Same parameter names, creation order and initialisation as the official classes.

Official quirk kept (docs/spiking_transformers.md "QKFormer"): in ``Spiking_Self_Attention`` the ``proj_lif``
runs on the [T * B, C, N] tensor, so its time loop walks the T * B (step, sample) pairs in order (step-major)
and the membrane is carried from one sample to the next.

``_attention_core`` of ``Token_QK_Attention`` / ``Spiking_Self_Attention``: the attention with its LIF on spikes
[T, B, C, N], the one call a fused Q-K / SSA op replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..functional import qk_token_attention
from ..nn.bn_lif import bn_neuron
from ..nn.spike_layers import SpikeConv1d, SpikeConv2d
from .transformer_blocks import (
    FUSED_ATTENTION_BACKENDS,
    HeadedAttention,
    RepeatedImageClassifier,
    add_conv_bn_lif,
    classifier_head,
    fused_attention_lif,
    init_linear_layernorm,
    lif_node,
    merge_heads_view,
    patch_geometry,
    per_step,
    qkv_layers,
    split_heads_view,
)

__all__ = [
    "QKFormer",
    "spiking_transformer",
    "hierarchical_spiking_transformer",
    "QKFormer_10_384",
    "QKFormer_10_512",
    "QKFormer_10_768",
    "Token_QK_Attention",
    "Spiking_Self_Attention",
]


def _conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return per_step(bn, per_step(conv, x))


def _conv_bn_lif(conv: nn.Module, bn: nn.Module, lif: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``lif(bn(conv(x)))`` per step; on the fused backends BatchNorm and the LIF as one ``bn_lif`` op
    (``bn_neuron``: BatchNorm's output never stored), docs/spiking_transformers.md "Fused blocks"."""
    if lif.backend not in FUSED_ATTENTION_BACKENDS:
        return lif(_conv_bn(conv, bn, x))
    return bn_neuron(bn, lif, per_step(conv, x))


def _spike_conv(cls: type, cin: int, cout: int, backend: str, bias: bool = True) -> nn.Module:
    """A 1x1 conv of a binary input: the ``SpikeConv1d`` / ``2d`` of ``cls`` (input saved at 1 bit, the same
    parameters and keys) on the fused backends, ``cls`` elsewhere."""
    if backend in FUSED_ATTENTION_BACKENDS:
        spike_cls = SpikeConv1d if cls is nn.Conv1d else SpikeConv2d
        return spike_cls(cin, cout, kernel_size=1, stride=1, bias=bias, backend=backend, check=False)
    return cls(cin, cout, kernel_size=1, stride=1, bias=bias)


class Token_QK_Attention(HeadedAttention):  # official class name
    """Q-K token attention on [T, B, C, H, W]: ``proj_lif(proj_bn(proj_conv(k * attn_lif(sum_c q))))``."""

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
        backend="auto",
    ):
        super().__init__(dim, num_heads, scaled=False)
        add_conv_bn_lif(self, ("q", "k"), *qkv_layers(dim, backend))
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_conv = _spike_conv(nn.Conv1d, dim, dim, backend)  # the attention's spikes in
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = lif_node(backend)

    def _attention_core(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Spikes [T, B, C, N] -> [T, B, C, N]: token mask ``attn_lif(sum over each head's channels of q)``
        [T, B, heads, 1, N] times ``k``."""
        fused = fused_attention_lif(self.attn_lif)
        if fused is not None:
            q, k = split_heads_view(q, self.num_heads), split_heads_view(k, self.num_heads)
            return merge_heads_view(qk_token_attention(q, k, **fused))
        T, B, C, N = q.shape
        attn = self.attn_lif(q.reshape(T, B, self.num_heads, C // self.num_heads, N).sum(dim=3, keepdim=True))
        return (attn * k.reshape(T, B, self.num_heads, C // self.num_heads, N)).reshape(T, B, C, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.flatten(3)
        q = _conv_bn_lif(self.q_conv, self.q_bn, self.q_lif, x)
        k = _conv_bn_lif(self.k_conv, self.k_bn, self.k_lif, x)
        x = self._attention_core(q, k)
        return _conv_bn_lif(self.proj_conv, self.proj_bn, self.proj_lif, x).reshape(shape)


class Spiking_Self_Attention(HeadedAttention):  # official class name
    """SSA on [T, B, C, H, W]: 1x1 Conv1d + BN + LIF for q, k, v, ``attn_lif((q (k^T v)) * 0.125)``, proj Conv + BN
    + LIF, the last LIF run over the T * B (step, sample) pairs as in the official code."""

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
        backend="auto",
    ):
        super().__init__(dim, num_heads)
        add_conv_bn_lif(self, ("q", "k", "v"), *qkv_layers(dim, backend))
        self.attn_lif = lif_node(backend, v_threshold=0.5)
        self.proj_conv = _spike_conv(nn.Conv1d, dim, dim, backend)  # the attention's spikes in
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = lif_node(backend)  # run over the T * B pairs as time (official): never bn_lif here
        self.qkv_mp = nn.MaxPool1d(4)  # built, unused (official)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(3)
        q, k, v = (
            _conv_bn_lif(getattr(self, f"{n}_conv"), getattr(self, f"{n}_bn"), getattr(self, f"{n}_lif"), x)
            for n in ("q", "k", "v")
        )
        x = self._attention_core(q, k, v).flatten(0, 1)
        return self.proj_lif(self.proj_bn(self.proj_conv(x))).reshape(T, B, C, W, H)


class MLP(nn.Module):
    """1x1 Conv2d -> BN -> LIF, twice; keys ``mlp1_*`` / ``mlp2_*`` (CIFAR) or ``fc1_*`` / ``fc2_*`` (ImageNet)."""

    def __init__(self, in_features, hidden_features=None, out_features=None, drop=0.0, *, prefix="mlp", backend="auto"):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.names = (f"{prefix}1", f"{prefix}2") if prefix == "mlp" else ("fc1", "fc2")
        for i, name, cin, cout in zip(
            (0, 1), self.names, (in_features, hidden_features), (hidden_features, out_features), strict=True
        ):
            # the second conv takes the first's spikes; the first, the residual stream (not binary)
            conv = _spike_conv(nn.Conv2d, cin, cout, backend) if i == 1 else nn.Conv2d(cin, cout, 1, stride=1)
            setattr(self, f"{name}_conv", conv)
            setattr(self, f"{name}_bn", nn.BatchNorm2d(cout))
            setattr(self, f"{name}_lif", lif_node(backend))
        self.c_hidden = hidden_features
        self.c_output = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            conv, bn, lif = (getattr(self, f"{name}_{part}") for part in ("conv", "bn", "lif"))
            x = _conv_bn_lif(conv, bn, lif, x)
        return x


class TokenSpikingTransformer(nn.Module):
    """``x + tssa(x)``, then ``x + mlp(x)``."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop=0.0, *, mlp_prefix="mlp", backend="auto"):
        super().__init__()
        self.tssa = Token_QK_Attention(dim, num_heads, backend=backend)
        self.mlp = MLP(dim, int(dim * mlp_ratio), drop=drop, prefix=mlp_prefix, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tssa(x)
        return x + self.mlp(x)


class SpikingTransformer(nn.Module):
    """``x + attention(x)``, then ``x + mlp(x)``; the attention's key is ``ssa`` (CIFAR) or ``attn`` (ImageNet)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop=0.0, *, imagenet=False, backend="auto"):
        super().__init__()
        self.attr = "attn" if imagenet else "ssa"
        setattr(self, self.attr, Spiking_Self_Attention(dim, num_heads, backend=backend))
        self.mlp = MLP(dim, int(dim * mlp_ratio), drop=drop, prefix="fc" if imagenet else "mlp", backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + getattr(self, self.attr)(x)
        return x + self.mlp(x)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)


class _Stage(nn.Module):
    """Conv stages ``name`` -> (Conv3x3, BN, [max pool], LIF) and a strided 1x1 shortcut ``proj_res``; the output is
    the last stage's spikes plus the shortcut's spikes."""

    stages: tuple[tuple[str, bool], ...] = ()
    res_from = 0  # the stage whose input feeds the shortcut

    def _build(self, widths: list[int], res_stride: int, backend: str) -> None:
        for (name, pool), cin, cout in zip(self.stages, widths[:-1], widths[1:], strict=True):
            setattr(self, f"{name}_conv", nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm2d(cout))
            if pool:
                setattr(self, f"{name}_maxpool", _pool())
            setattr(self, f"{name}_lif", lif_node(backend))
        cin = widths[self.res_from]
        self.proj_res_conv = nn.Conv2d(cin, widths[-1], kernel_size=1, stride=res_stride, padding=0, bias=False)
        self.proj_res_bn = nn.BatchNorm2d(widths[-1])
        self.proj_res_lif = lif_node(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = None
        for i, (name, pool) in enumerate(self.stages):
            if i == self.res_from:
                feat = x
            x = _conv_bn(getattr(self, f"{name}_conv"), getattr(self, f"{name}_bn"), x)
            if pool:
                x = per_step(getattr(self, f"{name}_maxpool"), x)
            x = getattr(self, f"{name}_lif")(x)
        return x + self.proj_res_lif(_conv_bn(self.proj_res_conv, self.proj_res_bn, feat))


class PatchEmbedInit(_Stage):
    """CIFAR: two 3x3 stages at full resolution, shortcut from the first stage's spikes (1x1, stride 1)."""

    stages = (("proj", False), ("proj1", False))
    res_from = 1

    def __init__(self, img_size_h=128, img_size_w=128, patch_size=4, in_channels=2, embed_dims=256, *, backend="auto"):
        super().__init__()
        patch_geometry(self, img_size_h, img_size_w, patch_size, in_channels)
        self._build([in_channels, embed_dims // 2, embed_dims], 1, backend)


class PatchEmbedInitImageNet(_Stage):
    """ImageNet: three 3x3 stages, the first two max-pooled (4x down), shortcut from the first stage's spikes
    (1x1, stride 2)."""

    stages = (("proj", True), ("proj1", True), ("proj2", False))
    res_from = 1

    def __init__(self, img_size_h=128, img_size_w=128, patch_size=4, in_channels=2, embed_dims=256, *, backend="auto"):
        super().__init__()
        patch_geometry(self, img_size_h, img_size_w, patch_size, in_channels)
        self._build([in_channels, embed_dims // 2, embed_dims, embed_dims], 2, backend)


class PatchEmbeddingStage(_Stage):
    """CIFAR: 3x3 stage, then 3x3 + max pool (2x down); shortcut from the input (1x1, stride 2)."""

    stages = (("proj3", False), ("proj4", True))

    def __init__(self, img_size_h=128, img_size_w=128, patch_size=4, in_channels=2, embed_dims=256, *, backend="auto"):
        super().__init__()
        patch_geometry(self, img_size_h, img_size_w, patch_size, in_channels)
        self._build([embed_dims // 2, embed_dims, embed_dims], 2, backend)


class PatchEmbeddingStageImageNet(PatchEmbeddingStage):
    """ImageNet: 3x3 + max pool (2x down), then 3x3; shortcut from the input (1x1, stride 2)."""

    stages = (("proj3", True), ("proj4", False))


class QKFormer(RepeatedImageClassifier):
    """QKFormer, CIFAR (official class ``spiking_transformer``): images [B, C, H, W] repeated over ``T`` -> logits.

    Stage 1 and 2: one Q-K token-attention block each at ``embed_dims // 4`` and ``// 2``; stage 3: ``depths - 2``
    SSA blocks at ``embed_dims``. 8 heads everywhere: the official constructor overrides ``num_heads``.

    Args:
        img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, num_heads, mlp_ratios,
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, norm_layer, depths, sr_ratios, T,
        pretrained_cfg: the official keywords.
        backend (str, Optional): backend of every neuron. Default: "auto".
    """

    _imagenet = False
    _token_blocks = (1, 1)
    _ssa_offset = 2

    def __init__(
        self,
        img_size_h: int = 128,
        img_size_w: int = 128,
        patch_size: int | tuple[int, int] = 16,
        in_channels: int = 2,
        num_classes: int = 11,
        embed_dims: int = 384,
        num_heads: int = 8,
        mlp_ratios: int = 4,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        depths: int = 4,
        sr_ratios: int = 1,
        T: int = 4,
        pretrained_cfg: object = None,
        *,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self._build(
            img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, [8, 8, 8], mlp_ratios,
            drop_rate, depths, T, backend,
        )  # fmt: skip

    def _build(self, img_h, img_w, patch, in_ch, num_classes, embed, heads, mlp_ratio, drop, depths, T, backend):
        self.num_classes = num_classes
        self.depths = depths
        self.T = T
        self.backend = backend
        geometry = (img_h, img_w, patch, in_ch)
        init_cls, stage_cls = (
            (PatchEmbedInitImageNet, PatchEmbeddingStageImageNet)
            if self._imagenet
            else (PatchEmbedInit, PatchEmbeddingStage)
        )
        mlp_prefix = "fc" if self._imagenet else "mlp"

        def token_stage(dim: int, n: int, h: int) -> nn.ModuleList:
            return nn.ModuleList(
                [
                    TokenSpikingTransformer(dim, h, mlp_ratio, drop, mlp_prefix=mlp_prefix, backend=backend)
                    for _ in range(n)
                ]
            )

        # created in the official order, registered in the official order (the two differ)
        patch_embed1 = init_cls(*geometry, embed // 4, backend=backend)
        stage1 = token_stage(embed // 4, self._token_blocks[0], heads[0])
        patch_embed2 = stage_cls(*geometry, embed // 2, backend=backend)
        stage2 = token_stage(embed // 2, self._token_blocks[1], heads[1])
        patch_embed3 = stage_cls(*geometry, embed, backend=backend)
        stage3 = nn.ModuleList(
            [
                SpikingTransformer(embed, heads[2], mlp_ratio, drop, imagenet=self._imagenet, backend=backend)
                for _ in range(depths - self._ssa_offset)
            ]
        )
        self.patch_embed1, self.patch_embed2, self.patch_embed3 = patch_embed1, patch_embed2, patch_embed3
        self.stage1, self.stage2, self.stage3 = stage1, stage2, stage3
        self.head = classifier_head(embed, num_classes)
        self.apply(init_linear_layernorm)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for embed, stage in (
            (self.patch_embed1, self.stage1),
            (self.patch_embed2, self.stage2),
            (self.patch_embed3, self.stage3),
        ):
            x = embed(x)
            for blk in stage:
                x = blk(x)
        return x.flatten(3).mean(3)


spiking_transformer = QKFormer  # the official class name


class hierarchical_spiking_transformer(QKFormer):  # official class name
    """QKFormer, ImageNet (``imagenet/qkformer.py``): ``T`` is the first keyword; stage 1 has one and stage 2 two
    Q-K token-attention blocks, stage 3 ``depths - 3`` SSA blocks, all with ``num_heads`` heads."""

    _imagenet = True
    _token_blocks = (1, 2)
    _ssa_offset = 3

    def __init__(
        self,
        T: int = 4,
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
        depths: int = 10,
        sr_ratios: int = 1,
        *,
        backend: str = "auto",
    ) -> None:
        nn.Module.__init__(self)
        self._build(
            img_size_h, img_size_w, patch_size, in_channels, num_classes, embed_dims, [num_heads] * 3, mlp_ratios,
            drop_rate, depths, T, backend,
        )  # fmt: skip


def _imagenet_factory(embed_dims: int, num_heads: int):
    def factory(T: int = 1, **kwargs) -> hierarchical_spiking_transformer:
        options = dict(
            img_size_h=224,
            img_size_w=224,
            patch_size=16,
            embed_dims=embed_dims,
            num_heads=num_heads,
            mlp_ratios=4,
            in_channels=3,
            num_classes=1000,
            qkv_bias=False,
            depths=10,
            sr_ratios=1,
        )
        clash = sorted(set(options) & set(kwargs))
        if clash:  # the official factories raise a TypeError for these too (keyword given twice)
            raise TypeError(f"QKFormer_10_{embed_dims}() fixes {clash}")
        return hierarchical_spiking_transformer(T=T, **options, **kwargs)

    factory.__name__ = factory.__qualname__ = f"QKFormer_10_{embed_dims}"
    factory.__doc__ = (
        f"The official ``QKFormer_10_{embed_dims}(T=1, **kwargs)``: embed {embed_dims}, {num_heads} heads."
    )
    return factory


QKFormer_10_384 = _imagenet_factory(384, 6)
QKFormer_10_512 = _imagenet_factory(512, 8)
QKFormer_10_768 = _imagenet_factory(768, 12)
