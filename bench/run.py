"""Benchmark report: verify every provider against the eager reference, then time it.

    python -m bench.run [--device auto|cpu|cuda] [--quick] [--cpu-table] [--ops lif ...] [--providers ...]
                        [--out bench/results] [--no-verify] [--max-minutes M]

Writes ``<out>/<date>_<device>.csv`` and ``.json`` (rows plus metadata: device, versions, commit, copy
bandwidth, verification) and a plot, and prints a markdown table. A provider that fails verification is
reported as FAILED and never timed; an unavailable one is listed with its reason.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import registry
from .utils import copy_bandwidth_gbps, lif_bytes, peak_memory_mb, time_fn

MODES = ("inference", "fwd", "fwd+bwd")
ELEM = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}


def _progress(iterable, total, desc):
    try:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
    except ImportError:
        return iterable


def metadata(device: str) -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "unknown", False
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": device, "device_name": name, "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton_version,
        "python": platform.python_version(), "commit": commit + ("-dirty" if dirty else ""),
    }


def _inputs(case: registry.Case, device: str, seed: int = 0):
    gen = torch.Generator(device=device).manual_seed(seed)
    x = (torch.randn(case.shape, generator=gen, device=device) * 1.5 + 0.3).to(case.dtype).requires_grad_()
    params = registry.OPS[case.op].make_params(case, device)
    return x, params


def verify(provider: str, op: str, device: str) -> tuple[str, str]:
    """('ok' | 'FAILED' | 'unavailable', detail): provider vs the eager reference on a small case."""
    case = registry.VERIFY_CASE[op]
    try:
        fn, _ = registry.build(provider, op, case, device)
    except registry.Unavailable as exc:
        return "unavailable", str(exc)
    results = []
    for f in (fn, registry.build("torch-eager", op, case, device)[0]):
        x, params = _inputs(case, device, seed=1)
        out = f(x, params)
        g = torch.randn(out.shape, generator=torch.Generator(device=device).manual_seed(2), device=device)
        grads = torch.autograd.grad(out, [x] + params, g)
        results.append((out.detach(), grads))
    (out, grads), (ref, ref_grads) = results
    flips = (out != ref).float().mean().item()
    if provider.startswith("spikingjelly"):
        # different charge formula (v + (x - v)/tau): last-bit rounding may flip a spike at the threshold
        if flips > 1e-3:
            return "FAILED", f"spike mismatch rate {flips:.1e}"
        if flips > 0:
            return "ok", f"{flips:.1e} spikes flipped at the threshold; gradients not compared"
    elif flips > 0:
        return "FAILED", f"spikes differ from the reference at {flips:.1e} of the entries"
    for g, r in zip(grads, ref_grads):
        if not torch.allclose(g, r, rtol=1e-4, atol=1e-5):
            return "FAILED", f"gradient differs: max abs err {(g - r).abs().max().item():.2e}"
    return "ok", "spikes equal, gradients within 1e-4"


def time_case(fn, case: registry.Case, device: str) -> dict[str, tuple]:
    x, params = _inputs(case, device)
    g = torch.randn(case.shape, device=device).to(case.dtype)
    leaves = [x] + params

    def inference():
        with torch.no_grad():
            fn(x, params)

    def fwd():
        fn(x, params)

    def fwd_bwd():
        fn(x, params).backward(g)

    out = {}
    for mode, f in (("inference", inference), ("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        f()  # compile / autotune / warm caches outside the timing
        timing = time_fn(f, device, grad_to_none=leaves)
        out[mode] = (timing, peak_memory_mb(f, device))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="fewer cases (GPU: fp32 LIF only)")
    ap.add_argument("--cpu-table", action="store_true", help="add T=8, N=1e6 fp32 on the CPU")
    ap.add_argument("--ops", nargs="*", default=list(registry.OPS))
    ap.add_argument("--providers", nargs="*", default=list(registry.PROVIDERS))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=None, help="start no new case after this long")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    meta = metadata(device)
    print(f"device: {meta['device_name']} ({device}); torch {meta['torch']}, triton {meta['triton']}, "
          f"commit {meta['commit'][:12]}", file=sys.stderr)
    meta["copy_bandwidth_GBps"] = copy_bandwidth_gbps(device)
    print(f"measured copy bandwidth: {meta['copy_bandwidth_GBps']:.1f} GB/s (read + write)", file=sys.stderr)

    if device == "cuda":
        cases = registry.GPU_QUICK_CASES if args.quick else registry.GPU_CASES
    else:
        cases = registry.CPU_CASES[:1] if args.quick else list(registry.CPU_CASES)
        if args.cpu_table:
            cases = cases + registry.CPU_TABLE_CASES
    cases = [c for c in cases if c.op in args.ops]

    status = {}
    for op in sorted({c.op for c in cases}):
        for provider in args.providers:
            status[(provider, op)] = ("unverified", "--no-verify") if args.no_verify else verify(provider, op, device)
            print(f"verify {provider:22s} {op:14s}: {status[(provider, op)][0]} ({status[(provider, op)][1]})",
                  file=sys.stderr)
    meta["verification"] = {f"{p} {o}": {"status": s, "detail": d} for (p, o), (s, d) in status.items()}

    rows, started = [], time.time()
    jobs = [(c, p) for c in cases for p in args.providers if status[(p, c.op)][0] in ("ok", "unverified")]
    for case, provider in _progress(jobs, len(jobs), "benchmark"):
        if args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            rows.append(dict(op=case.op, provider=provider, status="not run: time budget"))
            continue
        try:
            fn, schedule = registry.build(provider, case.op, case, device)
            measured = time_case(fn, case, device)
        except registry.Unavailable as exc:
            rows.append(dict(op=case.op, provider=provider, status=f"unavailable: {exc}"))
            continue
        except torch.OutOfMemoryError:
            rows.append(dict(op=case.op, provider=provider, T=case.T, status="out of memory"))
            torch.cuda.empty_cache()
            continue
        except Exception as exc:  # noqa: BLE001 - a peer refusing a case (e.g. a dtype) must not end the run
            rows.append(dict(op=case.op, provider=provider, T=case.T, status=f"error: {type(exc).__name__}: "
                             f"{str(exc)[:200]}"))
            continue
        for mode, (timing, peak) in measured.items():
            nbytes = lif_bytes(schedule, mode, case.T, case.N, ELEM[case.dtype])
            floor = lif_bytes("floor", mode, case.T, case.N, ELEM[case.dtype])
            gbps = nbytes / (timing.p50_ms * 1e-3) / 1e9
            rows.append(dict(
                op=case.op, provider=provider, mode=mode, dtype=str(case.dtype).removeprefix("torch."), T=case.T,
                shape="x".join(map(str, case.shape)), N=case.N, ms_p50=timing.p50_ms, ms_p20=timing.p20_ms,
                ms_p80=timing.p80_ms, schedule=schedule, bytes_model=nbytes, GBps=gbps,
                frac_copy_bw=gbps / meta["copy_bandwidth_GBps"],
                floor_GBps=floor / (timing.p50_ms * 1e-3) / 1e9, peak_mem_MB=peak, status="ok",
            ))
        if device == "cuda":
            torch.cuda.empty_cache()
    _add_speedups(rows)
    paths = write_results(rows, meta, Path(args.out))
    print(markdown_table(rows))
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return 0


def _add_speedups(rows: list[dict]) -> None:
    eager = {(r["op"], r["mode"], r["dtype"], r["T"], r["shape"]): r["ms_p50"] for r in rows
             if r.get("status") == "ok" and r["provider"] == "torch-eager"}
    for r in rows:
        if r.get("status") == "ok":
            base = eager.get((r["op"], r["mode"], r["dtype"], r["T"], r["shape"]))
            r["speedup_vs_eager"] = base / r["ms_p50"] if base else None


def write_results(rows: list[dict], meta: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", meta["device_name"]).strip("-").lower() or meta["device"]
    stem = out / f"{meta['date'][:10]}_{slug}"
    fields = ["op", "provider", "mode", "dtype", "T", "shape", "N", "ms_p50", "ms_p20", "ms_p80", "schedule",
              "bytes_model", "GBps", "frac_copy_bw", "floor_GBps", "peak_mem_MB", "speedup_vs_eager", "status"]
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in fields})
    with open(f"{stem}.json", "w") as f:
        json.dump({"metadata": meta, "rows": rows}, f, indent=1, default=str)
    paths = [Path(f"{stem}.csv"), Path(f"{stem}.json")]
    try:
        from .plot import plot

        paths.append(plot(Path(f"{stem}.json")))
    except ImportError as exc:
        print(f"no plot ({exc})", file=sys.stderr)
    return paths


def markdown_table(rows: list[dict]) -> str:
    lines = ["| op | dtype | T | provider | mode | ms (p50) | GB/s | of copy BW | vs eager | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['op']} | | {r.get('T', '')} | {r['provider']} | | {r['status']} | | | | |")
            continue
        speed = f"{r['speedup_vs_eager']:.2f}x" if r.get("speedup_vs_eager") else ""
        peak = f"{r['peak_mem_MB']:.0f}" if r.get("peak_mem_MB") is not None else ""
        lines.append(f"| {r['op']} | {r['dtype']} | {r['T']} | {r['provider']} | {r['mode']} | {r['ms_p50']:.3f} | "
                     f"{r['GBps']:.0f} | {100 * r['frac_copy_bw']:.0f}% | {speed} | {peak} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parent / ".inductor-cache"))
    sys.exit(main())
