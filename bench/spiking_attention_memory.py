"""Bytes held for backward by the spiking transformers' attention cores: the official eager code vs the fused op.

    TRITON_INTERPRET=1 python -m bench.spiking_attention_memory [--embed 64 --heads 8 --T 4 --N 64 --B 2]

Counts every tensor that autograd saves during one forward (``torch.autograd.graph.saved_tensors_hooks``), each
storage once, starting from the three binary [T, B, C, N] spike tensors of the Q / K / V neurons (as the official
models hold them; they require grad). Eager: the official code's core, head split by ``permute(...).contiguous()``
copies, then the attention LIF as SpikingJelly 2.0's multi-step ``LIFNode`` (torch backend: the official CuPy
neuron cannot run on the CPU); fused: ``snnkernels.functional`` on ``backend="triton"`` with the heads split by
views. Runs on the CPU (the Triton ops under the interpreter); the counts do not depend on the device.
Writes ``bench/results/<date>_<machine>_spiking-attention-bytes.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import torch

from snnkernels import functional as SF

from .memory import SavedTensorCensus


def held_bytes(fn, *inputs: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves while ``fn(*inputs)`` runs."""
    with SavedTensorCensus() as census:
        out = fn(*inputs)
    census.close()
    out.sum().backward()  # the graph is complete and differentiable
    return census.total


def _sj_lif():
    from spikingjelly.activation_based import neuron, surrogate

    return neuron.LIFNode(
        tau=2.0,
        v_threshold=0.5,
        detach_reset=True,
        surrogate_function=surrogate.Sigmoid(alpha=4.0),
        step_mode="m",
    )


def eager_cores(heads: int):
    """The official cores (Spikformer ImageNet SSA, SDT v1 SDSA, QKFormer token attention) on [T, B, C, N]."""

    def split(x: torch.Tensor) -> torch.Tensor:  # the official head split: [T, B, heads, N, d], a copy
        T, B, C, N = x.shape
        return x.transpose(-1, -2).reshape(T, B, N, heads, C // heads).permute(0, 1, 3, 2, 4).contiguous()

    def ssa(q, k, v):
        T, B, C, N = q.shape
        x = split(k).transpose(-2, -1) @ split(v)
        x = (split(q) @ x) * 0.125
        return _sj_lif()(x.transpose(3, 4).reshape(T, B, C, N).contiguous())

    def sdsa(q, k, v):
        T, B, C, N = q.shape
        kv = _sj_lif()(split(k).mul(split(v)).sum(dim=-2, keepdim=True))
        return split(q).mul(kv).transpose(3, 4).reshape(T, B, C, N).contiguous()

    def qk_token(q, k, v):
        T, B, C, N = q.shape
        attn = _sj_lif()(q.reshape(T, B, heads, C // heads, N).sum(dim=3, keepdim=True))
        return (attn * k.reshape(T, B, heads, C // heads, N)).flatten(2, 3)

    return {"ssa": ssa, "sdsa": sdsa, "qk_token": qk_token}


def fused_cores(heads: int):
    def split(x: torch.Tensor) -> torch.Tensor:  # a view
        T, B, C, N = x.shape
        return x.view(T, B, heads, C // heads, N).transpose(-1, -2)

    def merge(y: torch.Tensor) -> torch.Tensor:  # a view: the output has the input's layout
        T, B, H, N, D = y.shape
        return y.transpose(-1, -2).reshape(T, B, H * D, N)

    return {
        "ssa": lambda q, k, v: merge(SF.spiking_self_attention(split(q), split(k), split(v), backend="triton")),
        "sdsa": lambda q, k, v: merge(SF.spike_driven_self_attention(split(q), split(k), split(v), backend="triton")),
        "qk_token": lambda q, k, v: merge(SF.qk_token_attention(split(q), split(k), backend="triton")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--B", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    T, B, C, N = args.T, args.B, args.embed, args.N
    unit = T * B * C * N * 4  # one fp32 [T, B, C, N] tensor
    gen = torch.Generator().manual_seed(0)
    rows = []
    eager, fused = eager_cores(args.heads), fused_cores(args.heads)
    for name in eager:
        inputs = [(torch.rand(T, B, C, N, generator=gen) < 0.3).float().requires_grad_() for _ in range(3)]
        e = held_bytes(eager[name], *inputs)
        f = held_bytes(fused[name], *inputs)
        rows.append(
            dict(op=name, eager_bytes=e, fused_bytes=f, eager_units=e / unit, fused_units=f / unit, ratio=f / e)
        )
        print(f"{name:9s} eager {e:9d} B ({e / unit:5.2f} units)  fused {f:9d} B ({f / unit:5.2f} units)  {f / e:.3f}x")
    if not args.no_write:
        date = datetime.date.today().isoformat()
        path = Path(__file__).parent / "results" / f"{date}_cpu-{platform.machine()}_spiking-attention-bytes.json"
        config = dict(embed=C, heads=args.heads, T=T, N=N, B=B, unit_bytes=unit, torch=torch.__version__)
        path.write_text(json.dumps(dict(config=config, rows=rows), indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
