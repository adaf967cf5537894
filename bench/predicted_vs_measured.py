"""The static model's GPU time next to the measured one, per case and direction.

    python -m bench.predicted_vs_measured RESULTS.json [RESULTS.json ...] [--static STATIC.json]
    python -m bench.predicted_vs_measured --notes [--static STATIC.json]

``--static`` defaults to the newest ``bench/results/*_static-sm90.json`` (``python -m bench.static_report``).
Its rows are the Triton launches of each GPU benchmark case (label "<op> <shape> <dtype>", the benchmark rows'
own op, shape and dtype, so no name mapping is needed) with an ESTIMATE of each launch's time on H100 and H200
(docs/static_report.md "Method"). The predicted time of a case and direction is the sum of its launches'
estimates: "fwd" the launches made before the backward call, "fwd+bwd" all of them (a static JSON written
before the rows carried their phase gives "fwd+bwd" only).

The measured side is what ``bench.run`` / ``bench.attention`` write (``{"metadata": ..., "rows": [...]}``): the
median (``ms_p50``) of the ``snnkernels-triton`` rows, on the GPU their metadata names (H100 or H200). The joined
table goes to ``<stem of the first results file>_predicted-vs-measured.md`` and to stdout. Cases on one side
only are listed as such. On a device that is not an H100 / H200 (the GPU script's dry run on the CPU) there is
nothing to compare: it says so and prints the predictions only.

``--notes`` prints, from the static JSON alone, one row per kernel (min-max over the cases that launch it),
the table bench/NOTES.md quotes.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PROVIDER = "snnkernels-triton"
GPUS = ("H100", "H200")
# measured modes the static capture predicts (it runs the training forward, then the backward)
MODES = ("fwd", "fwd+bwd")

__all__ = [
    "device_gpu",
    "join",
    "kernel_table",
    "load_measured",
    "main",
    "markdown",
    "newest_static",
    "predicted",
]


def newest_static(results: Path = RESULTS) -> Path:
    """The newest ``*_static-sm90.json`` under ``results`` (names start with the date)."""
    found = sorted(results.glob("*_static-sm90.json"))
    if not found:
        raise FileNotFoundError(f"no *_static-sm90.json under {results} (python -m bench.static_report)")
    return found[-1]


def predicted(static: dict) -> dict[str, dict[str, dict[str, float]]]:
    """{case: {mode: {gpu: est. us}}} of the benchmark cases (registry samples are no benchmark case): mode
    "fwd+bwd" sums every launch, "fwd" the forward's launches (only when the rows carry their phase)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in static["rows"]:
        if r["source"] == "registry":
            continue
        modes = out.setdefault(r["case"], {})
        phase = r.get("phase")
        for mode in MODES:
            if mode == "fwd" and phase != "fwd":
                continue
            est = modes.setdefault(mode, dict.fromkeys(GPUS, 0.0))
            for gpu in GPUS:
                est[gpu] += r[f"est_us_{gpu}"]
    has_phase = any(r.get("phase") for r in static["rows"])
    for modes in out.values():
        if has_phase:
            modes.setdefault("fwd", dict.fromkeys(GPUS, 0.0))  # a case whose forward launches no Triton kernel
    return out


def failed_static(static: dict) -> dict[str, str]:
    """{case: error} of the cases the static capture could not capture."""
    return {t["case"]: t["error"] for t in static.get("totals", []) if t.get("error")}


def device_gpu(meta: dict) -> str | None:
    """``H100`` / ``H200`` when the results' metadata names a CUDA device of that kind, else None."""
    if meta.get("device") != "cuda":
        return None
    m = re.search(r"H100|H200", str(meta.get("device_name", "")).upper())
    return m.group(0) if m else None


def load_measured(paths: list[Path]) -> tuple[list[dict], list[str], dict[str, str | None]]:
    """(rows of the ``snnkernels-triton`` provider, each with its file's ``device_name`` and ``gpu``; notes on
    what was left out and why; {device name: "H100" / "H200" / None} of the files)."""
    rows, notes, devices = [], [], {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        meta = data.get("metadata", {})
        gpu = device_gpu(meta)
        devices[meta.get("device_name", "?")] = gpu
        kept = 0
        for r in data.get("rows", []):
            if not all(k in r for k in ("op", "shape", "dtype", "provider")):
                notes.append(f"{Path(path).name}: a row without op / shape / dtype / provider: {sorted(r)[:6]}")
                break
            if r["provider"] != PROVIDER:
                continue
            rows.append(
                {
                    "case": f"{r['op']} {r['shape']} {r['dtype']}" if r.get("shape") else f"{r['op']} {r['dtype']}",
                    "mode": r.get("mode"),
                    "status": r.get("status"),
                    "note": r.get("note"),
                    "us": r["ms_p50"] * 1e3 if r.get("ms_p50") is not None and r.get("status") == "ok" else None,
                    "device_name": meta.get("device_name", "?"),
                    "gpu": gpu,
                    "file": Path(path).name,
                }
            )
            kept += 1
        notes.append(f"{Path(path).name}: {kept} {PROVIDER} rows, device {meta.get('device_name', '?')}")
    return rows, notes, devices


def join(pred: dict, measured: list[dict], failed: dict[str, str] | None = None) -> list[dict]:
    """One row per (case, mode) on either side: predicted H100 / H200 us, measured us, measured / predicted
    (against the estimate for the measuring GPU) and where the row comes from."""
    out = []
    seen = set()
    for m in measured:
        key = (m["case"], m["mode"])
        seen.add(key)
        est = pred.get(m["case"], {}).get(m["mode"]) if m["mode"] else None
        row = {
            "case": m["case"],
            "mode": m["mode"] or "-",
            "H100": est and est["H100"],
            "H200": est and est["H200"],
            "measured_us": m["us"],
            "device": m["device_name"],
            "ratio": None,
        }
        if m["status"] != "ok":
            row["side"] = f"measured row {m['status']}: {m['note'] or ''}".strip()
        elif est is None:
            if m["case"] not in pred:
                row["side"] = "measured only (no static case)"
            else:
                row["side"] = f"measured only (the static capture predicts {' and '.join(MODES)} only)"
        elif m["gpu"] is None:
            row["side"] = f"no model for {m['device_name']}"
        else:
            row["ratio"] = m["us"] / est[m["gpu"]] if est[m["gpu"]] else None
            row["side"] = "both"
        out.append(row)
    for case, modes in pred.items():
        for mode, est in modes.items():
            if (case, mode) not in seen:
                out.append(
                    {
                        "case": case,
                        "mode": mode,
                        "H100": est["H100"],
                        "H200": est["H200"],
                        "measured_us": None,
                        "device": None,
                        "ratio": None,
                        "side": "predicted only (not measured)",
                    }
                )
    for case, error in (failed or {}).items():
        out.append(
            {
                "case": case,
                "mode": "-",
                "H100": None,
                "H200": None,
                "measured_us": None,
                "device": None,
                "ratio": None,
                "side": f"static capture failed: {error}",
            }
        )
    return out


def _f(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[dict], static_path: Path, notes: list[str], devices: dict[str, str | None]) -> str:
    """The joined table; predictions only when no results file came from an H100 / H200."""
    compare = any(devices.values())
    lines = [
        "# Predicted (static model) vs measured GPU time",
        "",
        f"Predicted: `{static_path.name}` (python -m bench.static_report), the sum of a case's launch estimates. "
        "**est.** columns are ESTIMATES from the static model, not measurements; measured: median (ms_p50) of "
        f"the `{PROVIDER}` rows. measured / predicted uses the estimate for the measuring GPU.",
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    if not compare:
        lines += [
            f"The results come from {', '.join(sorted(devices)) or 'no file'}: not a GPU the model covers (H100 / "
            "H200), so nothing to compare: predictions only.",
            "",
            "| case | mode | est. H100 us | est. H200 us | note |",
            "|---|---|---|---|---|",
        ]
        for r in sorted(rows, key=lambda r: (r["case"], r["mode"])):
            if r["H100"] is not None or r["side"].startswith("static capture failed"):
                lines.append(f"| {r['case']} | {r['mode']} | {_f(r['H100'])} | {_f(r['H200'])} | {r['side']} |")
        return "\n".join(lines) + "\n"
    both = [r for r in rows if r["side"] == "both"]
    ratios = sorted(r["ratio"] for r in both if r["ratio"] is not None)
    if ratios:
        lines += [
            f"{len(both)} rows on both sides; measured / predicted: min {ratios[0]:.2f}, median "
            f"{statistics.median(ratios):.2f}, max {ratios[-1]:.2f}.",
            "",
        ]
    lines += [
        "| case | mode | est. H100 us | est. H200 us | measured us | device | measured / predicted | side |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {"both": 0}
    for r in sorted(rows, key=lambda r: (order.get(r["side"], 1), r["case"], r["mode"])):
        lines.append(
            f"| {r['case']} | {r['mode']} | {_f(r['H100'])} | {_f(r['H200'])} | {_f(r['measured_us'])} | "
            f"{r['device'] or '-'} | {_f(r['ratio'], '.2f')} | {r['side']} |"
        )
    return "\n".join(lines) + "\n"


def kernel_table(static: dict, static_path: Path) -> str:
    """One row per kernel: its phase(s), the cases that launch it, launches per case, the min-max over those
    cases of its est. H100 / H200 us (summed over its rows in a case), and its occupancy limiter(s)."""
    per: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in static["rows"]:
        c = per[r["kernel"]].setdefault(
            r["case"], {"launches": 0, "H100": 0.0, "H200": 0.0, "limiter": set(), "phase": set(), "src": r["source"]}
        )
        c["launches"] += r["launches"]
        c["H100"] += r["est_us_H100"]
        c["H200"] += r["est_us_H200"]
        c["limiter"].add(r["limiter"])
        if r.get("phase"):
            c["phase"].add(r["phase"])

    def span(values: list[float]) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f} - {hi:.1f}"

    lines = [
        "| kernel | phase | cases | launches per case | est. H100 us | est. H200 us | limiter | case of the max "
        "(est. H100) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kernel in sorted(per):
        cases = per[kernel]
        launches = sorted({c["launches"] for c in cases.values()})
        top = max(cases, key=lambda k: cases[k]["H100"])
        samples = all(c["src"] == "registry" for c in cases.values())
        lines.append(
            f"| {kernel} | {'/'.join(sorted(set().union(*(c['phase'] for c in cases.values())))) or '-'} | "
            f"{len(cases)}{' (registry samples, tiny shapes)' if samples else ''} | "
            f"{launches[0] if len(launches) == 1 else f'{launches[0]} - {launches[-1]}'} | "
            f"{span([c['H100'] for c in cases.values()])} | {span([c['H200'] for c in cases.values()])} | "
            f"{', '.join(sorted(set().union(*(c['limiter'] for c in cases.values()))))} | {top} |"
        )
    meta = static.get("meta", {})
    head = (
        f"ESTIMATES from the static model, not measurements: `{static_path.name}` (commit {meta.get('commit', '?')}, "
        f"Triton {meta.get('triton', '?')}, {meta.get('latency_ns', '?')} ns latency), {len(per)} kernels; a "
        "kernel's time in a case is the sum over its launches there, shown as min - max over the cases that "
        f"launch it. Every case and launch: `{static_path.with_suffix('.md').name}`."
    )
    return head + "\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="*", type=Path, help="bench.run / bench.attention results JSON files")
    ap.add_argument("--static", type=Path, help="static report JSON (default: the newest *_static-sm90.json)")
    ap.add_argument("--notes", action="store_true", help="the per-kernel predictions (markdown) from --static only")
    ap.add_argument("--out", type=Path, help="markdown output (default: <first results stem>_predicted-vs-measured.md)")
    args = ap.parse_args(argv)
    static_path = args.static or newest_static()
    static = json.loads(static_path.read_text())
    if args.notes:
        print(kernel_table(static, static_path), end="")
        return 0
    if not args.results:
        ap.error("give results JSON files, or --notes")
    measured, notes, devices = load_measured(args.results)
    if not any(devices.values()):
        print(f"device {', '.join(sorted(devices))} is not a GPU the model covers (H100 / H200): predictions only")
    rows = join(predicted(static), measured, failed_static(static))
    md = markdown(rows, static_path, notes, devices)
    out = args.out or args.results[0].with_name(args.results[0].stem + "_predicted-vs-measured.md")
    out.write_text(md)
    print(md, end="")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
