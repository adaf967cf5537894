"""Old vs new Triton kernels, bit for bit, under Triton's interpreter (no GPU needed).

Runs the same deterministic cases through the ``snnkernels`` of a git ref (``--old``, default ``main``: its
``snnkernels/`` is extracted into a temporary folder with ``git archive``) and through this working tree, each
in its own process with ``TRITON_INTERPRET=1``, and compares every output tensor with ``torch.equal`` (NaNs in
the same places count as equal: ``torch.equal`` on the bit patterns). Cases: the leaky forward (plain and
counted) and backward, the gated neuron and DTA on its neuron's spikes, forward and backward, in fp32 / fp16 /
bf16 at odd shapes, over the neuron setting families of the registry's samples (hard / soft reset, strict,
detach, every surrogate, per-channel coefficients, initial state, membrane sequence, ReLU / map, residual,
counting) and several checkpoint chunk sizes; MA-SNN's pixel sweeps; the global-context sweeps at GPU-sized
pixel tiles; STAA-LIF's persistent loop at GPU-sized tiles; plus every Triton op's registry
samples.

Usage: ``python scripts/bitcheck_kernels.py [--old REF] [--quick] [--only KEY_PREFIX]``; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "float16", "bfloat16")
# the gated and DTA neurons' [T, B, C, H, W]
NEURON_SHAPES = ((1, 2, 3, 3, 5), (5, 2, 3, 5, 7), (9, 1, 5, 4, 4))
TF = (True, False)


def _grid(quick: bool, every: int, *axes):
    """(i, combination) over the product of ``axes``; with ``quick``, every ``every``-th combination only."""
    for i, combination in enumerate(itertools.product(*axes)):
        if not quick or i % every == 0:
            yield i, combination


def _gen(key: str):
    import torch

    return torch.Generator().manual_seed(zlib.crc32(key.encode()))


def _randn(g, *shape, dtype="float32", scale=1.5, shift=0.3):
    import torch

    return (torch.randn(*shape, generator=g) * scale + shift).to(getattr(torch, dtype))


def _tensors(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().clone()]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def leaky_cases(quick: bool):
    """(key, thunk) of the leaky forward, counted forward and backward."""
    import torch

    from snnkernels.ops import leaky_triton as lt
    from snnkernels.surrogate import SURROGATE_IDS

    sg_ids = sorted(SURROGATE_IDS)
    shapes = ((1, (2, 3, 5)), (5, (3, 7)), (13, (2, 3, 7)), (16, (1, 3, 11)))
    for i, (shape, dtype, chunk, family) in _grid(quick, 4, shapes, DTYPES, (1, 3, 8), range(4)):
        T, n = shape
        key = f"leaky/{T}x{n}/{dtype}/chunk{chunk}/family{family}"
        hard, strict, detach = family % 2 == 0, family in (1, 2), family >= 2
        per_channel, has_v0, v_seq = family in (0, 3), family != 1, family in (1, 3)
        sg = sg_ids[(i // 4) % len(sg_ids)]

        def run(T=T, n=n, dtype=dtype, chunk=chunk, key=key, hard=hard, strict=strict, detach=detach, pc=per_channel,
                has_v0=has_v0, v_seq=v_seq, sg=sg):  # fmt: skip
            g = _gen(key)
            x = _randn(g, T, *n, dtype=dtype)
            C = n[1] if len(n) > 2 else 1
            v0 = _randn(g, *n, scale=0.5, shift=0.0) if has_v0 else None
            coef = [0.6 + 0.1 * torch.randn(C, generator=g) if pc else None for _ in range(3)]
            scalars = (0.6, 0.9, 0.05, 1.0, 0.0 if hard else -0.3, 0.1)
            settings = (hard, strict, detach, sg, 2.0)
            spikes, v_final, ckpt, vs = lt.leaky_fwd_triton(x, v0, *coef, *scalars, *settings, True, True, chunk, v_seq)
            counted = lt.leaky_fwd_counted_triton(x, v0, *coef, *scalars, *settings, True, True, chunk, v_seq)
            inference = lt.leaky_fwd_triton(x, v0, *coef, *scalars, *settings, False, False, chunk, v_seq)
            gs = _randn(g, *spikes.shape, dtype=dtype, shift=0.0)
            gv = _randn(g, *v_final.shape, shift=0.0)
            gseq = _randn(g, *vs.shape, shift=0.0) if v_seq else None
            needs = (has_v0, pc, pc, pc)
            grads = lt.leaky_bwd_triton(gs, gv, x, v0, ckpt, *coef, *scalars, *settings, chunk, *needs, gseq)
            return [spikes, v_final, ckpt, vs, *counted, *inference, *grads]

        yield key, run


def gated_cases(quick: bool):
    """(key, thunk) of the gated neuron (TCJA: identity, no map; MA-SNN: ReLU and map), forward and backward."""
    import torch

    from snnkernels.ops import gated_leaky_triton as gl

    for i, (shape, dtype, chunk, relu, hard) in _grid(quick, 4, NEURON_SHAPES, DTYPES, (1, 3, 8), (False, True), TF):
        key = f"gated/{shape}/{dtype}/chunk{chunk}/relu{relu}/hard{hard}"

        def run(shape=shape, dtype=dtype, chunk=chunk, relu=relu, hard=hard, key=key, i=i):
            g = _gen(key)
            T, B, C, H, W = shape
            x = _randn(g, *shape, dtype=dtype)
            scale = torch.rand(T, B, C, generator=g) + 0.5
            spatial = torch.rand(B, H * W, generator=g) + 0.5 if relu else None
            neuron = (0.5, 1.0, 0.05, 1.0, 0.0 if hard else -0.2, 0.1)
            strict, count = i % 3 == 0, i % 2 == 0
            spikes, ckpt, counts = gl.gated_leaky_fwd(
                x, scale, spatial, relu, *neuron, hard, strict, True, chunk, count
            )
            inference = gl.gated_leaky_fwd(x, scale, spatial, relu, *neuron, hard, strict, False, chunk, not count)
            gs = _randn(g, *shape, dtype=dtype, shift=0.0)
            grads = gl.gated_leaky_bwd(
                gs, x, scale, spatial, ckpt, relu, *neuron, hard, strict, i % 4 == 1, i % 8, 2.0, chunk
            )
            return [spikes, ckpt, counts, *inference, *grads]

        yield key, run


def dta_cases(quick: bool):
    """(key, thunk) of DTA on its neuron's spikes (plain NA and the residual form with NA in [B, T] storage)."""
    import torch

    from snnkernels.ops import dta_leaky_triton as dl

    for i, (shape, dtype, chunk, residual, hard) in _grid(
        quick, 4, NEURON_SHAPES, DTYPES, (1, 3, 8), (False, True), TF
    ):
        key = f"dta/{shape}/{dtype}/chunk{chunk}/residual{residual}/hard{hard}"

        def run(shape=shape, dtype=dtype, chunk=chunk, residual=residual, hard=hard, key=key, i=i):
            g = _gen(key)
            T, B, C, H, W = shape
            x = _randn(g, *shape, dtype=dtype, shift=0.5)
            if residual:
                na = _randn(g, B, T, C, H, W, dtype=dtype, shift=0.0).transpose(0, 1)
            else:
                na = _randn(g, *shape, dtype=dtype, shift=0.0)
            a, b = torch.rand(T, B, C, generator=g), torch.rand(T, B, C, generator=g)
            na_bias = torch.randn(T, B, C, generator=g) if residual else None
            neuron = (0.5, 1.0, 0.05, 1.0, 0.0 if hard else -0.2, 0.1)
            strict, count = i % 3 == 0, i % 2 == 0
            y, ckpt, counts = dl.dta_leaky_fwd(x, na, a, b, na_bias, *neuron, hard, strict, True, chunk, count)
            inference = dl.dta_leaky_fwd(x, na, a, b, na_bias, *neuron, hard, strict, False, chunk, not count)
            gy = _randn(g, *shape, dtype=dtype, shift=0.0)
            grads = dl.dta_leaky_bwd(
                gy, x, na, a, b, na_bias, ckpt, *neuron, hard, strict, i % 4 == 1, i % 8, 2.0, chunk
            )
            return [y, ckpt, counts, *inference, *grads]

        yield key, run


def ma_pixel_cases(quick: bool):
    """(key, thunk) of MA-SNN's pixel sweeps (pooling over (t, c) and the backward's per-pixel sums) with enough
    rows per slice for several loop trips and a tail; small integers in X make ties for the maximum."""
    import torch

    from snnkernels.ops import ma_snn_triton as ma

    shapes = ((5, 2, 7, 3, 5), (3, 1, 13, 4, 4), (1, 3, 2, 5, 3))
    for _, (shape, dtype, ties) in _grid(quick, 2, shapes, DTYPES, (False, True)):
        key = f"ma_pixel/{shape}/{dtype}/ties{ties}"

        def run(shape=shape, dtype=dtype, ties=ties, key=key):
            g = _gen(key)
            T, B, C, H, W = shape
            x = _randn(g, *shape, shift=0.0)
            x = (x * 2).round().to(getattr(torch, dtype)) if ties else x.to(getattr(torch, dtype))
            scale = torch.ones(T, B, C) if ties else torch.rand(T, B, C, generator=g) + 0.5
            spatial = torch.rand(B, H * W, generator=g)
            gy = _randn(g, *shape, dtype=dtype, shift=0.0)
            out = list(ma.pixel_stats(x, scale))
            out += list(ma.bwd_pixel_sums(gy, x, scale, spatial)) + list(ma.bwd_pixel_sums(gy, x, scale, None))
            return out

        yield key, run


def gc_cases(quick: bool):
    """(key, thunk) of the global-context sweeps with GPU-sized pixel tiles (2 or 4 pixels: the interpreter's own
    tile is the whole plane), so that several tiles, a partial one and a missing last one of a pair are walked."""
    import torch
    import triton

    from snnkernels.ops import global_context_triton as gc

    shapes = ((2, 3, 5, 3, 3), (1, 2, 16, 3, 5), (3, 1, 7, 2, 4))
    for _, (shape, dtype, block_p) in _grid(quick, 2, shapes, DTYPES, (2, 4)):
        key = f"gc/{shape}/{dtype}/block_p{block_p}"

        def run(shape=shape, dtype=dtype, block_p=block_p, key=key):
            g = _gen(key)
            x = _randn(g, *shape, dtype=dtype, shift=0.0)
            wk = torch.randn(shape[2], generator=g)
            tiles = gc.channel_tiles  # what the launchers' tile choice calls
            gc.channel_tiles = lambda C, S, min_pixels: (triton.next_power_of_2(C), block_p, 1)
            try:
                ctx, stats = gc.gc_context_fwd(x, wk)
                grads = gc.gc_context_bwd(torch.randn(ctx.shape, generator=g), x, wk, ctx, stats)
            finally:
                gc.channel_tiles = tiles
            return [ctx, stats, *grads]

        yield key, run


def staa_loop_cases(quick: bool):
    """(key, thunk) of STAA-LIF's persistent loop, forward and backward, at GPU-sized tiles (the interpreter's
    own tile is the whole sample), so that several row blocks (an odd count: a missing last one of a pair),
    several pixel tiles and a partial one are walked; with and without the step attention, every gate form,
    TSRD drops, detached reset and two surrogates."""
    import torch

    from snnkernels.ops import staa_loop_triton as sl

    shapes = ((3, 2, 5, 3, 3), (2, 1, 8, 4, 5))
    settings = (
        (True, 0, False, False, 3),
        (True, 1, True, True, 0),
        (True, 2, True, False, 3),
        (False, 0, True, False, 0),
    )
    for _, (shape, (has_sa, gate, has_drop, detach, sg), tile) in _grid(quick, 2, shapes, settings, ((1, 4), (2, 8))):
        key = f"staa_loop/{shape}/sa{has_sa}/gate{gate}/drop{has_drop}/detach{detach}/sg{sg}/tile{tile}"

        def run(shape=shape, has_sa=has_sa, gate=gate, has_drop=has_drop, detach=detach, sg=sg, tile=tile, key=key):
            g = _gen(key)
            T, B, C, H, W = shape
            y = _randn(g, *shape, scale=1.0, shift=0.5)
            a, b = torch.rand(C, generator=g) + 0.5, torch.rand(C, generator=g) + 0.5
            hid = 3
            w1 = torch.randn(hid, C, generator=g) if has_sa else None
            w2 = torch.randn(2 * C, hid, generator=g) if has_sa else None
            drop = (torch.rand(T, B, generator=g) < 0.3).to(torch.int32) if has_drop else None
            tiles = sl.half_tiles  # what the launchers' tile choice calls
            sl.half_tiles = lambda R, S: (tile[0], tile[1], 1)
            try:
                fwd = sl.staa_loop_fwd(y, a, b, w1, w2, drop, 0.8, gate, 1.0, 0.0, torch.float32, True)
                ds = _randn(g, *shape, shift=0.0)
                # the forward's saved outputs (states, gates, hidden units, means) follow the spikes
                bwd = sl.staa_loop_bwd(ds, y, a, b, w1, w2, drop, *fwd[1:], 0.8, gate, 1.0, 0.0, detach, sg, 2.0)
            finally:
                sl.half_tiles = tiles
            return [*fwd, *bwd]

        yield key, run


def registry_cases(quick: bool):
    """(key, thunk) of every Triton op's registry samples (seeded)."""
    import torch

    from snnkernels.ops import registry

    registry.load()
    for entry in registry.REGISTRY:
        if entry.backend != "triton" or "cpu" not in entry.devices:
            continue

        def run(entry=entry):
            torch.manual_seed(zlib.crc32(entry.name.encode()))
            out = []
            for sample in entry.samples("cpu"):
                with torch.no_grad():
                    out += _tensors(entry.op()(*sample))
            return out

        yield f"registry/{entry.name}", run


def run_cases(out_path: str, quick: bool, only: str) -> None:
    import torch

    results = {}
    for cases in (leaky_cases, gated_cases, dta_cases, ma_pixel_cases, gc_cases, staa_loop_cases, registry_cases):
        for key, thunk in cases(quick):
            if key.startswith(only):
                results[key] = [t.detach().cpu() for t in _tensors(thunk())]
    torch.save(results, out_path)
    print(f"{len(results)} cases, {sum(len(v) for v in results.values())} tensors", flush=True)


def _same(a, b) -> bool:
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        # bit patterns: NaN payloads and signed zeros included
        width = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(width), b.contiguous().view(width))
    return torch.equal(a, b)


def compare(old_path: str, new_path: str) -> int:
    import torch

    old, new = torch.load(old_path), torch.load(new_path)
    assert old.keys() == new.keys(), "the old and new runs made different cases"
    tensors, bad = 0, []
    for key in old:
        assert len(old[key]) == len(new[key]), f"{key}: {len(old[key])} vs {len(new[key])} outputs"
        for j, (a, b) in enumerate(zip(old[key], new[key], strict=True)):
            tensors += 1
            if not _same(a, b):
                bad.append(f"{key}[{j}]")
    print(f"compared {len(old)} cases, {tensors} tensors: {len(bad)} differ")
    for b in bad[:50]:
        print("  differs:", b)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="main", help="git ref of the old kernels")
    parser.add_argument("--quick", action="store_true", help="a quarter of the generated cases")
    parser.add_argument("--only", default="", help="only the cases whose key starts with this (e.g. gc/, leaky/)")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: run the cases, save them here
    args = parser.parse_args()
    if args.run:
        run_cases(args.run, args.quick, args.only)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp, "old")
        old_tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.old, "snnkernels"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
        for so in (ROOT / "snnkernels").glob("_C*.so"):  # the native extension, built in place (not in git)
            (old_tree / "snnkernels" / so.name).symlink_to(so)
        paths = {}
        for name, tree in (("old", old_tree), ("new", ROOT)):
            paths[name] = str(Path(tmp, f"{name}.pt"))
            env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(tree))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--run", paths[name]] + (
                ["--only", args.only] + (["--quick"] if args.quick else [])
            )
            print(f"{name} ({args.old if name == 'old' else 'working tree'}):", end=" ", flush=True)
            subprocess.run(cmd, env=env, check=True, cwd=tmp)
        return compare(paths["old"], paths["new"])


if __name__ == "__main__":
    sys.exit(main())
