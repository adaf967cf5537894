"""Benchmark report: verify every provider against the eager reference, then time it.

    python -m bench.run [--device auto|cpu|cuda] [--quick] [--cpu-table] [--ops lif ...] [--providers ...]
                        [--dtypes float32 ...] [--out bench/results] [--no-verify] [--no-plot]
                        [--max-minutes M]

Writes ``<out>/<date>_<device>[_quick|_cpu-table].csv`` and ``.json`` (rows plus metadata: device,
versions, commit, copy bandwidth, verification) and the plots, and prints a markdown table. A provider that fails
verification is reported as FAILED and never timed; an unavailable one is listed with its reason; a case
that raises while being timed is a FAILED row. Exit status 1 when anything FAILED (results still written).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":  # before torch is imported: compiled kernels persist across runs (git-ignored)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(__file__).resolve().parent / ".inductor-cache"))

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import torch  # noqa: E402

from . import registry  # noqa: E402
from .utils import MODES, Timing, copy_bandwidth_gbps, cpu_name, lif_bytes, peak_memory_mb, time_fn  # noqa: E402

ELEM = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Verification tolerances (rtol, atol) for dL/dx, by dtype: both sides compute in fp32 (and round once to the
# storage dtype) but add terms in a different order. Against the tests' (python_tests/utils.py GRAD_TOL, given
# there as (atol, rtol)): fp32 is the same; fp16 / bf16 take about the same rtol (2 ulps, 2^-9 and 2^-6, here
# rounded up to 2e-3 and 1.6e-2) but an atol equal to it, where the tests use 1e-5, so values near 0 get far
# more slack here.
GRAD_TOL = {torch.float32: (1e-5, 1e-6), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}
# fp32 gradients of per-channel coefficients (sums over B * S * T terms), elementwise. The tests bound these
# normwise instead (assert_grad_close(reduced=True): atol 1e-6 + 1e-5 * max|expected|, rtol 1e-5).
PARAM_TOL = (1e-4, 1e-4)
# Differing spikes allowed per spike on Gaussian input. The tests' MAX_FLIP_RATE is the same number but counts
# first flips per neuron-step, and the tests also require each flip to lie within FLIP_EPS of the threshold,
# which this check does not.
MAX_FLIP_RATE = 1e-3
CSV_FIELDS = [
    "op",
    "provider",
    "mode",
    "dtype",
    "T",
    "shape",
    "N",
    "ms_p50",
    "ms_p20",
    "ms_p80",
    "GB/s",
    "fraction_of_copy_bw",
    "peak_mem_MB",
    "speedup_vs_eager",
    "schedule",
    "MB_moved",
    "floor_GB/s",
    "reps",
    "faults_per_call",
    "status",
    "note",
    "device",
]


def progress(iterable, total, desc):
    """``iterable`` with a tqdm progress bar on stderr when tqdm is installed."""
    try:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
    except ImportError:
        return iterable


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - absent, or broken without a GPU
        return None


def metadata(device: str) -> dict:
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    import snnkernels

    name = torch.cuda.get_device_name() if device == "cuda" else cpu_name()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": device,
        "device_name": name,
        "device_slug": slug if device == "cuda" else f"cpu-{slug}",
        "cpu_threads": torch.get_num_threads(),
        "host_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": _version("triton"),
        "python": platform.python_version(),
        "snnkernels": snnkernels.__version__,
        "spikingjelly": registry.spikingjelly_version(),
        "cupy": _version("cupy") if device == "cuda" else None,
        "commit": commit + ("-dirty" if dirty else ""),
        "chunk": registry.CHUNK,
        "timing": (
            "triton.testing.do_bench(warmup=25 ms, rep=100 ms), quantiles 0.5/0.2/0.8"
            if device == "cuda"
            else "time.perf_counter, 2 warm-up calls, >= 5 runs and >= 0.2 s, median and p20/p80"
        ),
        "byte_model": "bench/utils.py lif_bytes (GB/s uses the provider's schedule; floor_GB/s the floor)",
        "argv": sys.argv[1:],
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2),  # CPU timings on a busy host are noise
    }


def make_inputs(case: registry.Case, device: str, seed: int = 0, dyadic: bool = False):
    """(x, params, grad_spikes). ``dyadic``: x = k/16 with |k| <= 40 and power-of-two coefficients, so
    every charge in every formulation is exact and spikes must agree bit for bit across providers."""
    gen = torch.Generator(device=device).manual_seed(seed)
    if dyadic:
        x = torch.randint(-24, 41, case.shape, generator=gen, device=device).float() / 16
    else:
        x = torch.randn(case.shape, generator=gen, device=device) * 1.5 + 0.3
    x = x.to(case.dtype).requires_grad_()
    params = registry.OPS[case.op].make_params(case, device, dyadic)
    g = torch.randn(case.shape, generator=gen, device=device).to(case.dtype)
    return x, params, g


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def verify(provider: str, op: str, dtype: torch.dtype, device: str) -> tuple[str, str]:
    """('ok' | 'FAILED' | 'unavailable', detail): provider vs the eager reference on a small case.

    Two inputs: Gaussian, and dyadic (exact arithmetic). Spikes must be equal on both for the bit-exact
    providers (``registry.BIT_EXACT``) and on the dyadic one for all; on Gaussian input the others may
    flip a spike within rounding of the threshold (at most ``MAX_FLIP_RATE``), and the neurons that
    flipped are left out of the gradient comparison. Gradients: dL/dx within ``GRAD_TOL[dtype]``,
    dL/d(coefficients) within ``PARAM_TOL``.
    """
    case = registry.Case(op, registry.VERIFY_SHAPE[op], dtype)
    try:
        fn, _ = registry.build(provider, op, case, device)
    except registry.Unavailable as exc:
        return "unavailable", str(exc)
    ref_fn, _ = registry.build("torch-eager", op, case, device)
    details = []
    try:
        for dyadic in (False, True):
            kind = "dyadic" if dyadic else "gaussian"
            runs = []
            for f in (fn, ref_fn):
                x, params, g = make_inputs(case, device, seed=1, dyadic=dyadic)
                with torch.no_grad():
                    inference = f(x, params)  # the forward without saving (no checkpoints)
                out = f(x, params)
                grads = torch.autograd.grad(out, [x] + params, g)
                runs.append((out.detach(), grads, inference))
            (out, grads, inference), (ref, ref_grads, _) = runs
            for name, o in (("training", out), ("inference", inference)):
                if o.shape != ref.shape or o.dtype != ref.dtype:
                    return "FAILED", (
                        f"{kind} {name}: output {tuple(o.shape)} {o.dtype} != {tuple(ref.shape)} {ref.dtype}"
                    )
                diff = (o != ref).sum().item()
                if diff and (dyadic or provider in registry.BIT_EXACT):
                    return "FAILED", f"{kind} input, {name} forward: {diff} of {ref.numel()} spikes differ"
                if diff > MAX_FLIP_RATE * ref.numel():
                    return "FAILED", f"{kind} input, {name} forward: flip rate {diff / ref.numel():.1e}"
            mismatch = (out != ref).reshape(case.T, -1)
            flips = mismatch.sum().item()
            keep = ~mismatch.any(dim=0)  # neurons whose trajectories stayed identical
            rtol, atol = GRAD_TOL[dtype]
            gx, rx = grads[0].reshape(case.T, -1)[:, keep], ref_grads[0].reshape(case.T, -1)[:, keep]
            if not torch.allclose(gx.double(), rx.double(), rtol=rtol, atol=atol):
                return "FAILED", f"{kind} input: dL/dx differs, max abs err {_max_err(gx, rx):.2e}"
            errs = [_max_err(gx, rx)]
            if not flips:
                for i, (gp, rp) in enumerate(zip(grads[1:], ref_grads[1:], strict=True)):
                    if not torch.allclose(gp.double(), rp.double(), rtol=PARAM_TOL[0], atol=PARAM_TOL[1]):
                        return (
                            "FAILED",
                            f"{kind} input: gradient of param {i} differs, max abs err {_max_err(gp, rp):.2e}",
                        )
                    errs.append(_max_err(gp, rp))
            details.append(f"{kind}: {flips} flips, max grad err {max(errs):.1e}")
    except Exception as exc:  # noqa: BLE001 - a crash is a failed verification
        return "FAILED", f"raised {type(exc).__name__}: {exc}".splitlines()[0][:300]
    return "ok", "; ".join(details)


def time_case(fn, case: registry.Case, device: str, modes=MODES) -> dict[str, tuple]:
    """{mode: (Timing, peak MiB)}. Each mode is called once first (compilation, autotuning and caches
    stay outside the timing)."""
    x, params, g = make_inputs(case, device)
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
        if mode not in modes:
            continue
        f()
        for t in leaves:
            t.grad = None
        timing = time_fn(f, device, grad_to_none=leaves)
        out[mode] = (timing, peak_memory_mb(f, device))
    return out


def result_row(case: registry.Case, provider: str, device: str, **kw) -> dict:
    """One results row (CSV_FIELDS) of ``case`` on ``provider``; ``kw`` adds or overrides fields."""
    row = dict(
        op=case.op,
        provider=provider,
        dtype=case.dtype_name,
        T=case.T,
        shape="x".join(map(str, case.shape)),
        N=case.N,
        device=device,
    )
    row.update(kw)
    return row


def timed_row(
    case: registry.Case,
    provider: str,
    device: str,
    mode: str,
    timing: Timing,
    peak: float,
    *,
    schedule: str,
    mb_moved: float,
    gbps: float,
    floor_gbps: float,
    copy_bandwidth: float,
    note: str | None = None,
) -> dict:
    """The "ok" results row of ``case`` timed in ``mode``: the timing's percentiles, its bytes and bandwidths
    (``copy_bandwidth`` in GB/s), the peak memory ``peak`` in MB."""
    return result_row(
        case,
        provider,
        device,
        mode=mode,
        ms_p50=timing.p50_ms,
        ms_p20=timing.p20_ms,
        ms_p80=timing.p80_ms,
        schedule=schedule,
        MB_moved=mb_moved,
        **{"GB/s": gbps, "floor_GB/s": floor_gbps},
        fraction_of_copy_bw=gbps / copy_bandwidth,
        peak_mem_MB=peak,
        reps=timing.reps,
        faults_per_call=timing.faults_per_call,
        status="ok",
        note=note,
    )


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="fewer cases (GPU: LIF fp32/bf16 and leaky fp32)")
    ap.add_argument(
        "--cpu-table",
        action="store_true",
        help="CPU: only the table case, LIF T=8, N=1e6 fp32 (eager vs torch.compile vs peers)",
    )
    ap.add_argument("--ops", nargs="*", default=list(registry.OPS), choices=list(registry.OPS))
    ap.add_argument("--providers", nargs="*", default=list(registry.PROVIDERS))
    ap.add_argument("--dtypes", nargs="*", default=None, choices=list(DTYPES))
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-verify", action="store_true", help="time without checking against the reference")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new case after this many minutes since launch (the rest is listed as not run)",
    )
    args = ap.parse_args(argv)
    unknown = set(args.providers) - set(registry.PROVIDERS)
    if unknown:
        ap.error(f"unknown providers {sorted(unknown)}; known: {registry.PROVIDERS}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    import torch._dynamo as dynamo  # "as": a bare ``import torch._dynamo`` would make torch local to main

    for name in ("recompile_limit", "cache_size_limit"):  # registry.build resets Dynamo per case anyway
        if hasattr(dynamo.config, name):
            setattr(dynamo.config, name, max(getattr(dynamo.config, name), 64))

    meta = metadata(device)
    print(
        f"device: {meta['device_name']} ({device}); torch {meta['torch']}, triton {meta['triton']}, "
        f"spikingjelly {meta['spikingjelly']}, commit {meta['commit'][:12]}",
        file=sys.stderr,
    )
    meta["copy_bandwidth_GBps"] = copy_bandwidth_gbps(device, None if device == "cuda" else 1 << 27)
    print(f"measured copy bandwidth: {meta['copy_bandwidth_GBps']:.1f} GB/s (read + write)", file=sys.stderr)

    if device == "cuda":
        cases = list(registry.GPU_QUICK_CASES if args.quick else registry.GPU_CASES)
    else:
        cases = list(registry.CPU_QUICK_CASES if args.quick else registry.CPU_CASES)
        if args.cpu_table:
            cases = list(registry.CPU_TABLE_CASES)
    cases = [c for c in cases if c.op in args.ops and (args.dtypes is None or c.dtype_name in args.dtypes)]
    meta["cases"] = [c.label for c in cases]

    tag = "cpu-table" if (args.cpu_table and device == "cpu") else ("quick" if args.quick else None)
    meta["complete"] = False
    rows: list[dict] = []
    status: dict[tuple, tuple[str, str]] = {}
    for op, dtype in sorted({(c.op, c.dtype) for c in cases}, key=lambda k: (k[0], str(k[1]))):
        for provider in args.providers:
            key = (provider, op, dtype)
            status[key] = ("unverified", "--no-verify") if args.no_verify else verify(provider, op, dtype, device)
            state, detail = status[key]
            print(f"verify {provider:20s} {op:14s} {str(dtype)[6:]:9s}: {state} ({detail})", file=sys.stderr)
            if state not in ("ok", "unverified"):
                first = next(c for c in cases if (c.op, c.dtype) == (op, dtype))
                rows.append(
                    result_row(
                        first, provider, device, T=None, shape=None, N=None, mode=None, status=state, note=detail
                    )
                )
    meta["verification"] = [
        {"provider": p, "op": o, "dtype": str(d)[6:], "status": s, "detail": t} for (p, o, d), (s, t) in status.items()
    ]

    jobs = [(c, p) for c in cases for p in args.providers if status[(p, c.op, c.dtype)][0] in ("ok", "unverified")]
    # torch.compile's compilation dominates a GPU run: its cases go last, so a time budget cuts them rather
    # than the fused kernels' cases (each list stays in the registry's priority order)
    jobs.sort(key=lambda job: job[1] == "torch-compile")
    for case, provider in progress(jobs, len(jobs), "benchmark"):
        if args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            rows.append(
                result_row(case, provider, device, status="not run", note=f"time budget ({args.max_minutes} min)")
            )
            continue
        try:
            fn, schedule = registry.build(provider, case.op, case, device)
            measured = time_case(fn, case, device, args.modes)
        except registry.Unavailable as exc:
            rows.append(result_row(case, provider, device, status="unavailable", note=str(exc)))
            continue
        except torch.OutOfMemoryError:
            rows.append(result_row(case, provider, device, status="FAILED", note="out of memory"))
            torch.cuda.empty_cache()
            continue
        except Exception as exc:  # noqa: BLE001 - recorded, and the run goes on
            traceback.print_exc()
            rows.append(
                result_row(
                    case, provider, device, status="FAILED", note=f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                )
            )
            continue
        elem, op = ELEM[case.dtype], registry.OPS[case.op]
        for mode, (timing, peak) in measured.items():
            nbytes = lif_bytes(schedule, mode, case.T, case.N, elem, meta["chunk"], op.learned, op.packed)
            floor = lif_bytes("floor", mode, case.T, case.N, elem, packed=op.packed)
            seconds = timing.p50_ms * 1e-3
            gbps = nbytes / seconds / 1e9
            rows.append(
                timed_row(
                    case,
                    provider,
                    device,
                    mode,
                    timing,
                    peak,
                    schedule=schedule,
                    mb_moved=nbytes / 1e6,
                    gbps=gbps,
                    floor_gbps=floor / seconds / 1e9,
                    copy_bandwidth=meta["copy_bandwidth_GBps"],
                )
            )
        del fn
        if device == "cuda":
            torch.cuda.empty_cache()
        # saved after every case: a run killed by a time limit still leaves what it measured
        meta["wall_s"] = round(time.time() - started, 1)
        _add_speedups(rows)
        write_results(rows, meta, Path(args.out), tag, plot=False)
    _add_speedups(rows)
    meta["wall_s"] = round(time.time() - started, 1)
    meta["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    meta["complete"] = True
    paths = write_results(rows, meta, Path(args.out), tag, plot=not args.no_plot)
    print(markdown_table(rows))
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    failed = [r for r in rows if r["status"] == "FAILED"]
    for r in failed:
        print(
            f"FAILED: {r['provider']} {r['op']} {r['dtype']} T={r.get('T')} {r.get('mode') or ''}: {r['note']}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _add_speedups(rows: list[dict]) -> None:
    key = lambda r: (r["op"], r["mode"], r["dtype"], r["T"], r["shape"])  # noqa: E731
    eager = {key(r): r["ms_p50"] for r in rows if r["status"] == "ok" and r["provider"] == "torch-eager"}
    for r in rows:
        if r["status"] == "ok":
            base = eager.get(key(r))
            r["speedup_vs_eager"] = base / r["ms_p50"] if base else None


def write_results(rows: list[dict], meta: dict, out: Path, tag: str | None = None, plot: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"{meta['date'][:10]}_{meta['device_slug']}" + (f"_{tag}" if tag else ""))
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k) for k in CSV_FIELDS})
    with open(f"{stem}.json", "w") as f:
        json.dump({"metadata": meta, "rows": rows}, f, indent=1, default=str)
    paths = [Path(f"{stem}.csv"), Path(f"{stem}.json")]
    if plot:
        try:
            from .plot import plot as draw

            paths += draw(Path(f"{stem}.json"))
        except ImportError as exc:
            print(f"no plot ({exc})", file=sys.stderr)
    return paths


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def markdown_table(rows: list[dict]) -> str:
    ok = sorted(
        (r for r in rows if r["status"] == "ok"),
        key=lambda r: (r["op"], r["shape"].split("x", 1)[1], r["dtype"], r["mode"], r["T"]),
    )
    # the CPU's page faults per call: a row that faulted was slowed by the allocator, not by its kernel
    faults = any(r.get("faults_per_call") is not None for r in ok)
    fault_cell = (lambda r: f" {_fmt(r.get('faults_per_call'), '.0f')} |") if faults else (lambda r: "")
    lines = [
        "| op | shape | dtype | mode | T | provider | ms p50 [p20, p80] | GB/s | of copy BW | vs eager "
        "| peak MB |" + (" faults/call |" if faults else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if faults else ""),
    ]
    for r in ok:
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['dtype']} | {r['mode']} | {r['T']} | {r['provider']} | "
            f"{r['ms_p50']:.3f} [{r['ms_p20']:.3f}, {r['ms_p80']:.3f}] | {r['GB/s']:.1f} | "
            f"{100 * r['fraction_of_copy_bw']:.0f}% | {_fmt(r.get('speedup_vs_eager'), '.2f')}x | "
            f"{_fmt(r.get('peak_mem_MB'), '.0f')} |" + fault_cell(r)
        )
    other = [r for r in rows if r["status"] != "ok"]
    if other:
        lines += ["", "| provider | op | dtype | T | status | reason |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {r['provider']} | {r['op']} | {r['dtype']} | {r.get('T') or ''} | {r['status']} | "
            f"{(r.get('note') or '').replace('|', '/')} |"
            for r in other
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
