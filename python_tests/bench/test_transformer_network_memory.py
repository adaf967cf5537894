"""bench/transformer_network_memory.py at a tiny size: a whole network counted on both sides after its output
and gradients are checked equal, the official side's held membranes seen, and a wrong model rejected."""

from __future__ import annotations

import json

import pytest
import torch

from bench import transformer_network_memory as N
from bench.transformer_block_memory import assert_same, count, official_style

TINY = dict(embed=32, depth=1, heads=2, T=2, img=32)


@pytest.mark.triton
def test_network_counts_official_membranes_and_fused_holds_less(tmp_path):
    r = N.measure_network("spikformer_cifar", 1, **TINY)
    assert r["check"] == {"equal": True}  # output and every gradient, at this size without a rounding flip
    assert r["official"]["membranes"] > 0  # h_seq, spike_seq are saved and v_seq held by every CupyLikeLIFNode
    assert r["fused"]["membranes"] < r["official"]["membranes"]
    assert 0 < r["fused"]["total"] < r["official"]["total"]
    assert r["ratio"] == r["fused"]["total"] / r["official"]["total"]
    text = N.markdown([r], ["cmd"])
    assert "| spikformer_cifar |" in text and f"{r['ratio']:.3f}" in text
    json.dumps(r)  # the row is what the results file stores


def test_gradient_check_rejects_a_different_network():
    net = N.NETWORKS["qkformer_cifar"]
    cfg = {**TINY, "depth": 2}  # QKFormer CIFAR: depth - 2 SSA blocks after its two Q-K stages
    torch.manual_seed(0)
    a = net.build("torch", **cfg)
    b = official_style(net.build("torch", **cfg))
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, cfg["img"], cfg["img"])
    official = count(b, net.call, x)[1:]
    assert_same("same", official, count(a, net.call, x)[1:])  # the official-style neurons compute what ours do
    with torch.no_grad():
        a.head.weight[0, 0] += 0.5
    with pytest.raises(AssertionError):
        assert_same("changed head", official, count(a, net.call, x)[1:])
