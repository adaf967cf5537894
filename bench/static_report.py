"""Static GPU report: every Triton launch of the GPU benchmarks, compiled as launched and read (no GPU needed).

    python -m bench.static_report [--arch 90] [--ops lif tcja ...] [--dtypes float32 ...] [--no-cuda]
                                  [--out bench/results] [--tag static-sm90]

For each captured launch (``bench.static_launches``: the benchmark cases' forward and backward, then the
registry ops no case reaches, from their samples): registers, spills, shared memory, occupancy on H100, the
main loop's global load / store widths and load stages, bytes moved (from the launch arguments), the
bandwidth floor on H100 and H200, and a Little's-law in-flight estimate, labelled ESTIMATE. Per case: the
bytes against the benchmark's byte model. With nvcc on the PATH, also the CUDA C++ instantiations of
``csrc/leaky`` (``nvcc -Xptxas -v``). Method and assumptions: docs/static_report.md. Writes
``<out>/<date>_<tag>.{md,json}``; exit status 1 when a Triton launch spills, a time-loop kernel has more
than one load stage per chunk, or a case moves more bytes than its model (the CI test checks the same).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import static_launches as sl

ROOT = Path(__file__).resolve().parents[1]

# H100 SXM5 SM (H200 has the same SM): docs/static_report.md "Assumptions"
SM_REGS = 65536
SM_WARPS = 64
SM_BLOCKS = 32
SM_SMEM = 228 * 1024
SMEM_RESERVED = 1024  # per block
REG_UNIT = 256  # registers are allocated per warp in units of 256
GPUS = {"H100": {"bw": 3.35e12, "sms": 132}, "H200": {"bw": 4.8e12, "sms": 132}}
LATENCY_S = 700e-9  # loaded HBM latency (ESTIMATE input)
# kernels that walk T with the neuron state in registers: one load stage per chunk is their contract
TIME_LOOP_KERNELS = (
    "leaky_fwd_kernel",
    "leaky_bwd_kernel",
    "leaky_fwd_counted_kernel",
    "leaky_fwd_packed_kernel",
    "gated_leaky_fwd_kernel",
    "gated_leaky_bwd_kernel",
    "dta_leaky_fwd_kernel",
    "dta_leaky_bwd_kernel",
)
# The pass models count [T, B, C, H, W]-sized tensors only: per-row vectors ([T, B, C] or smaller, e.g. the
# row statistics, fp32 even for half input) are left out of the comparison and reported apart; what remains
# may exceed the model by this fraction (rounding of the checkpoint count).
MODEL_SLACK = 0.005
# a launch whose in-flight estimate exceeds its H100 floor by more than this is too slow on paper
# (docs/static_report.md "What CI checks")
ESTIMATE_SLACK = 1.15
# the native extension's nvcc flags (snnkernels/_native_sources.py, a private module: the CI test checks they agree)
NVCC_FLAGS = ("-O3", "-fmad=false", "--expt-relaxed-constexpr", "-lineinfo")


def occupancy(regs: int, warps: int, smem: int) -> dict:
    """Resident blocks per SM on H100 and what limits them (registers, warps, blocks, shared memory)."""
    warp_regs = math.ceil(max(regs, 1) * 32 / REG_UNIT) * REG_UNIT
    limits = {
        "regs": SM_REGS // (warp_regs * warps),
        "warps": SM_WARPS // warps,
        "blocks": SM_BLOCKS,
        "smem": SM_SMEM // (smem + SMEM_RESERVED),
    }
    blocks = min(limits.values())
    limiter = min(limits, key=lambda k: (limits[k], k != "regs"))
    return {"blocks_per_sm": blocks, "limiter": limiter, "occupancy": blocks * warps / SM_WARPS}


def estimate(row: dict, gpu: str) -> dict:
    """ESTIMATE (Little's law): bytes in flight per SM = resident threads x main-loop load bytes per thread per
    stage; read rate = min(peak, in flight x SMs used / latency); time = max(floor, bytes read / read rate)."""
    spec = GPUS[gpu]
    sms_used = min(spec["sms"], row["programs"] // row["launches"] or 1)
    resident = min(row["blocks_per_sm"], math.ceil(row["programs"] / row["launches"] / spec["sms"]))
    per_stage = row["load_bytes"] / max(row["load_stages"], 1)
    in_flight = resident * row["num_warps"] * sl.WARP * per_stage
    floor = (row["bytes_read"] + row["bytes_written"]) / spec["bw"]
    rate = min(spec["bw"], in_flight * sms_used / LATENCY_S) if in_flight else spec["bw"]
    return {
        "in_flight_kb": in_flight / 1024,
        "floor_us": floor * 1e6,
        "est_us": max(floor, row["bytes_read"] / rate) * 1e6,
    }


def _tile(constexprs: dict) -> str:
    return "x".join(str(v) for k, v in constexprs.items() if k.startswith("BLOCK"))


def _flags(constexprs: dict) -> str:
    out = []
    for k, v in constexprs.items():
        if k.startswith("BLOCK") or k == "CHUNK" or v is False:
            continue
        out.append(k if v is True else f"{k}={v}")
    return ",".join(out)


def triton_rows(captured: list[sl.CaseLaunches], arch: int = 90, log=None) -> list[dict]:
    """One row per (case, phase, compiled kernel, grid): identical launches of a case's forward or backward (the
    per-step kernels) merged."""
    rows: dict[tuple, dict] = {}
    for cl in captured:
        for launch in cl.launches:
            key = (cl.case.label, launch.phase, sl.compile_key(launch, arch), launch.grid)
            if key not in rows:
                if log:
                    log(f"compile sm_{arch} {launch.kernel} ({cl.case.label})")
                a = sl.analyse(launch, arch)
                constexprs = sl.user_constexprs(launch)
                rows[key] = {
                    "case": cl.case.label,
                    "source": cl.case.source,
                    "kernel": launch.kernel,
                    "phase": launch.phase,
                    "flags": _flags(constexprs),
                    "tile": _tile(constexprs),
                    "constexprs": {k: v for k, v in constexprs.items()},
                    "grid": list(launch.grid),
                    "num_warps": launch.options.get("num_warps", 4),
                    "num_stages": launch.options.get("num_stages", 3),
                    "launches": 0,
                    "programs": 0,
                    "bytes_read": 0,
                    "bytes_written": 0,
                    "bytes_rows": 0,
                    "arch": arch,
                    **{k: v for k, v in a.items()},
                }
            r = rows[key]
            read, written = sl.launch_bytes(launch, r)
            shape = cl.case.shape
            if len(shape) >= 5:  # [T, B, C, H, W]: the per-row tensors, which the pass models leave out
                r["bytes_rows"] += sum(sl.launch_bytes(launch, r, max_numel=math.prod(shape[:-2])))
            r["launches"] += 1
            r["programs"] += launch.programs
            r["bytes_read"] += read
            r["bytes_written"] += written
    out = []
    for r in rows.values():
        r.update(occupancy(r.get("reg", 0), r["num_warps"], r["shared"]))
        r["spill"] = r.get("local", 0) > 0 or r["stl"] > 0 or r["ldl"] > 0
        for gpu in GPUS:
            for k, v in estimate(r, gpu).items():
                r[f"{k}_{gpu}"] = v
        r["time_loop"] = r["kernel"] in TIME_LOOP_KERNELS
        out.append(r)
    return out


def byte_model(case: sl.StaticCase) -> int | None:
    """The benchmark's byte model of the case's forward + backward (bench/utils.py lif_bytes, bench/attention.py
    PASSES), None when it has none."""
    from .registry import Case

    if case.source == "lif":
        from snnkernels.ops.leaky import CHECKPOINT_CHUNK

        from .registry import OPS
        from .run import ELEM
        from .utils import lif_bytes

        c = Case(case.op, case.shape, case.dtype)
        op = OPS[case.op]
        return lif_bytes("recompute", "fwd+bwd", c.T, c.N, ELEM[case.dtype], CHECKPOINT_CHUNK, op.learned, op.packed)
    if case.source == "attention":
        from .attention import floor_bytes

        return floor_bytes(Case(case.op, case.shape, case.dtype), "fwd+bwd")
    return None


def case_totals(captured: list[sl.CaseLaunches], rows: list[dict]) -> list[dict]:
    out = []
    for cl in captured:
        mine = [r for r in rows if r["case"] == cl.case.label]
        total = sum(r["bytes_read"] + r["bytes_written"] for r in mine)
        row_bytes = sum(r["bytes_rows"] for r in mine)
        model = byte_model(cl.case)
        t = {
            "case": cl.case.label,
            "source": cl.case.source,
            "error": cl.error,
            "launches": sum(r["launches"] for r in mine),
            "bytes": total,
            "model_bytes": model,
            "row_bytes": row_bytes,
            "bytes_over_model": None if not model else (total - row_bytes) / model,
            "above_model": bool(model) and total - row_bytes > model * (1 + MODEL_SLACK),
        }
        for gpu in GPUS:
            t[f"floor_us_{gpu}"] = sum(r[f"floor_us_{gpu}"] for r in mine)
            t[f"est_us_{gpu}"] = sum(r[f"est_us_{gpu}"] for r in mine)
            for phase in ("fwd", "bwd"):
                t[f"est_us_{gpu}_{phase}"] = sum(r[f"est_us_{gpu}"] for r in mine if r.get("phase") == phase)
        out.append(t)
    return out


# ---------------------------------------------------------------------------------------------------------
# CUDA C++ (csrc/leaky), read the same way


def cuda_rows(arch: int = 90, log=None) -> tuple[list[dict], str | None]:
    """Every CUDA C++ instantiation of csrc/leaky/*.cu compiled with the project's nvcc flags for sm_``arch``:
    registers, stack and spills from ``-Xptxas -v``; ([], reason) without nvcc."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return [], "nvcc not found"
    demangle = shutil.which("cu++filt") or shutil.which("c++filt")
    csrc = ROOT / "csrc"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted((csrc / "leaky").glob("*.cu")):
            if log:
                log(f"nvcc sm_{arch} {src.name}")
            proc = subprocess.run(
                [nvcc, "-c", "-std=c++17", *NVCC_FLAGS, f"-I{csrc / 'include'}", f"-I{csrc}", f"-arch=sm_{arch}"]
                + ["-Xptxas", "-v", str(src), "-o", str(Path(tmp) / (src.name + ".o"))],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                return [], f"nvcc failed on {src.name}: {proc.stderr[-2000:]}"
            rows += parse_ptxas(proc.stderr, src.name)
    if demangle and rows:
        names = subprocess.run(
            [demangle], input="\n".join(r["mangled"] for r in rows), capture_output=True, text=True
        ).stdout.splitlines()
        for r, n in zip(rows, names, strict=False):
            r["name"] = n
    return rows, None


def parse_ptxas(log: str, source: str) -> list[dict]:
    """Rows of ``ptxas -v`` output: function, registers, stack frame, spill stores / loads (bytes)."""
    rows = []
    current = None
    for line in log.splitlines():
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            current = {"source": source, "mangled": m.group(1), "name": m.group(1)}
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current is not None:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current is not None and "stack" in current:
            current["reg"] = int(m.group(1))
            rows.append(current)
            current = None
    return rows


# ---------------------------------------------------------------------------------------------------------
# output


def _f(v, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _widths(d: dict) -> str:
    return " ".join(f"{n}x{w}B" for w, n in d.items()) or "-"


def markdown(meta: dict, rows: list[dict], totals: list[dict], cuda: list[dict], cuda_note: str | None) -> str:
    arch = meta["arch"]
    lines = [
        f"# Static GPU report, sm_{arch} ({meta['date']})",
        "",
        f"Generated by `python -m bench.static_report` at commit {meta['commit']} with Triton {meta['triton']}, "
        f"torch {meta['torch']}: every Triton launch of the GPU benchmarks, captured from the launchers and "
        f"compiled as a CUDA launch specialises it; nothing ran on a GPU. Method, assumptions and how to read "
        "the columns: docs/static_report.md. **est.** columns are ESTIMATES (Little's law, "
        f"{LATENCY_S * 1e9:.0f} ns latency, 132 SMs), not measurements.",
        "",
        "## Checks",
        "",
    ]
    bench_rows = [r for r in rows if r["source"] != "registry"]
    spills = [r for r in bench_rows if r["spill"]]
    stages = [r for r in bench_rows if r["time_loop"] and r["load_stages"] > 1]
    sample_spills = [r for r in rows if r["source"] == "registry" and r["spill"]]
    above = [t for t in totals if t["above_model"]]
    errors = [t for t in totals if t["error"]]
    slow = slow_rows(rows)
    lines += [
        f"- launches read: {sum(r['launches'] for r in rows)} in {len(totals)} cases, "
        f"{len({r['kernel'] for r in rows})} kernels, {len(rows)} rows",
        f"- Triton spills at the benchmark shapes: {len(spills)} rows"
        + "".join(f"\n  - {r['kernel']} ({r['case']})" for r in spills),
        f"- Triton spills at the registry samples' tiny shapes (coverage only, not checked): {len(sample_spills)} rows"
        + "".join(f"\n  - {r['kernel']} ({r['flags']})" for r in sample_spills),
        f"- time-loop kernels with more than one load stage per chunk: {len(stages)} rows: "
        + ", ".join(sorted({r["kernel"] for r in stages})),
        f"- cases above their byte model (per-row vectors apart, +{MODEL_SLACK:.1%}): {len(above)}"
        + "".join(f"\n  - {t['case']}: {t['bytes_over_model']:.3f}x" for t in above),
        f"- launches estimated above {ESTIMATE_SLACK}x their H100 floor (ESTIMATE): {len(slow)} rows"
        + "".join(f"\n  - {r['kernel']} ({r['case']}): {r['est_us_H100'] / r['floor_us_H100']:.2f}x" for r in slow),
        f"- cases that failed to capture: {len(errors)}" + "".join(f"\n  - {t['case']}: {t['error']}" for t in errors),
        "",
        "## Per case (fwd + bwd)",
        "",
        "| case | launches | MB moved | of which per-row MB | model MB | (moved - per-row) / model "
        "| floor H100 / H200 us | est. H100 / H200 us (ESTIMATE) | est. H100 fwd / bwd us (ESTIMATE) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in totals:
        lines.append(
            f"| {t['case']} | {t['launches']} | {t['bytes'] / 1e6:.1f} | {t['row_bytes'] / 1e6:.2f} | "
            f"{_f(t['model_bytes'] and t['model_bytes'] / 1e6)} | {_f(t['bytes_over_model'], '.3f')} | "
            f"{t['floor_us_H100']:.1f} / {t['floor_us_H200']:.1f} | {t['est_us_H100']:.1f} / {t['est_us_H200']:.1f} | "
            f"{t['est_us_H100_fwd']:.1f} / {t['est_us_H100_bwd']:.1f} |"
        )
    lines += [
        "",
        "## Per launch",
        "",
        "Rows merge a case's identical launches (`n`: how many; bytes and times are their sum). Occupancy: "
        "blocks per SM on H100 and the limiter. L / S: global loads / stores per thread in the main loop "
        "(the whole kernel when it has no loop, marked *).",
        "",
        "| case | kernel (flags) | phase | n | grid x warps, tile | regs | spill | smem B | occ. H100 "
        "| main-loop L / S | load stages | MB r+w | floor H100 / H200 us | in flight KB/SM (est.) "
        "| est. H100 / H200 us (est.) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spill = f"{r.get('local', 0)} B, {r['stl']} STL" if r["spill"] else "0"
        loop = "" if r["has_loop"] else "*"
        lines.append(
            f"| {r['case']} | {r['kernel']} ({r['flags']}) | {r.get('phase', '')} | {r['launches']} | "
            f"{r['programs'] // r['launches']} x "
            f"{r['num_warps']}w, {r['tile']} | {r.get('reg', 0)} | {spill} | {r['shared']} | "
            f"{r['occupancy']:.0%} ({r['blocks_per_sm']}, {r['limiter']}) | {_widths(r['loads'])} / "
            f"{_widths(r['stores'])}{loop} | {r['load_stages']} | "
            f"{(r['bytes_read'] + r['bytes_written']) / 1e6:.1f} | "
            f"{r['floor_us_H100']:.1f} / {r['floor_us_H200']:.1f} | "
            f"{r['in_flight_kb_H100']:.1f} | {r['est_us_H100']:.1f} / {r['est_us_H200']:.1f} |"
        )
    lines += ["", "## CUDA C++ (csrc/leaky, nvcc -Xptxas -v)", ""]
    if cuda_note:
        lines.append(f"Not compiled: {cuda_note}")
    else:
        spilled = [c for c in cuda if c["spill_stores"] or c["spill_loads"]]
        regs = [c["reg"] for c in cuda]
        lines += [
            f"{len(cuda)} kernel instantiations compiled for sm_{arch}; registers {min(regs)}-{max(regs)}; "
            f"{len(spilled)} with spill stores / loads (every instantiation is in the JSON):",
            "",
            "| instantiation | source | regs | stack B | spill stores / loads B |",
            "|---|---|---|---|---|",
        ]
        for c in spilled:
            lines.append(
                f"| `{c['name'].split('(')[0]}` | {c['source']} | {c['reg']} | {c['stack']} | "
                f"{c['spill_stores']} / {c['spill_loads']} |"
            )
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def select_cases(ops: list[str] | None, dtypes: list[str] | None) -> list[sl.StaticCase]:
    return [
        c
        for c in sl.CASES
        if (not ops or c.op in ops) and (not dtypes or str(c.dtype).removeprefix("torch.") in dtypes)
    ]


def build(
    cases: list[sl.StaticCase], arch: int = 90, cuda: bool | Path = True, log=None, with_registry: bool = True
) -> dict:
    """Everything the report shows, as one JSON-able dict."""
    start = time.time()
    captured = sl.capture_all(cases, with_registry=with_registry, log=log)
    rows = triton_rows(captured, arch, log=log)
    totals = case_totals(captured, rows)
    if isinstance(cuda, Path):  # a previous report's CUDA rows (same sources and flags)
        previous = json.loads(cuda.read_text())
        cuda_list, cuda_note = previous["cuda"], previous["cuda_note"]
    else:
        cuda_list, cuda_note = cuda_rows(arch, log=log) if cuda else ([], "not requested (--no-cuda)")
    import triton

    meta = {
        "date": dt.date.today().isoformat(),
        "arch": arch,
        "commit": _commit(),
        "triton": triton.__version__,
        "torch": torch.__version__,
        "latency_ns": LATENCY_S * 1e9,
        "gpus": GPUS,
        "seconds": round(time.time() - start, 1),
    }
    return {"meta": meta, "rows": rows, "totals": totals, "cuda": cuda_list, "cuda_note": cuda_note}


def slow_rows(rows: list[dict]) -> list[dict]:
    """The benchmark-shape launches whose in-flight ESTIMATE is above ``ESTIMATE_SLACK`` x their H100 floor."""
    return [
        r
        for r in rows
        if r["source"] != "registry" and r["est_us_H100"] > ESTIMATE_SLACK * r["floor_us_H100"] and r["floor_us_H100"]
    ]


def failures(report: dict) -> list[str]:
    """What the CI test fails on, at the benchmark shapes (the registry samples' tiny launches are there for
    coverage): spills, time-loop kernels with several load stages per chunk, bytes above a model, cases that
    could not be captured."""
    rows = [r for r in report["rows"] if r["source"] != "registry"]
    out = [f"spill: {r['kernel']} ({r['case']})" for r in rows if r["spill"]]
    out += [
        f"{r['load_stages']} load stages per chunk: {r['kernel']} ({r['case']})"
        for r in rows
        if r["time_loop"] and r["load_stages"] > 1
    ]
    out += [f"bytes {t['bytes_over_model']:.3f}x model: {t['case']}" for t in report["totals"] if t["above_model"]]
    out += [
        f"estimate {r['est_us_H100'] / r['floor_us_H100']:.2f}x floor: {r['kernel']} ({r['case']})"
        for r in slow_rows(report["rows"])
    ]
    out += [f"capture failed: {t['case']}: {t['error']}" for t in report["totals"] if t["error"]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--ops", nargs="*", help="benchmark ops (default: all)")
    ap.add_argument("--dtypes", nargs="*", help="float32 bfloat16 float16 (default: all)")
    ap.add_argument("--ci", action="store_true", help="the CI subset (static_launches.ci_cases), no registry samples")
    ap.add_argument("--no-cuda", action="store_true", help="skip the CUDA C++ instantiations")
    ap.add_argument("--cuda-from", type=Path, help="take the CUDA rows from this earlier report JSON (nvcc is slow)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--tag", default=None, help="file name tag (default static-sm<arch>)")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    cases = sl.ci_cases() if args.ci else select_cases(args.ops, args.dtypes)
    cuda = args.cuda_from or not args.no_cuda
    report = build(cases, args.arch, cuda, log, with_registry=not args.ci)
    md = markdown(report["meta"], report["rows"], report["totals"], report["cuda"], report["cuda_note"])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{report['meta']['date']}_{args.tag or f'static-sm{args.arch}'}"
    stem.with_suffix(".md").write_text(md)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(md)
    print(f"wrote {stem}.md / .json", file=sys.stderr)
    bad = failures(report)
    for b in bad:
        print(f"CHECK: {b}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
