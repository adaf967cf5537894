"""Plots from a results JSON only: time vs T per provider (fwd+bwd), and bandwidth as a fraction of the
measured copy bandwidth. ``python -m bench.plot bench/results/<file>.json``"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def plot(results_json: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(results_json).read_text())
    rows = [r for r in data["rows"] if r.get("status") == "ok" and r["mode"] == "fwd+bwd"]
    groups = sorted({(r["op"], r["dtype"]) for r in rows})
    fig, axes = plt.subplots(2, max(len(groups), 1), figsize=(5 * max(len(groups), 1), 8), squeeze=False)
    for col, (op, dtype) in enumerate(groups):
        for provider in sorted({r["provider"] for r in rows if (r["op"], r["dtype"]) == (op, dtype)}):
            pts = sorted((r["T"], r["ms_p50"], r["frac_copy_bw"]) for r in rows
                         if (r["op"], r["dtype"], r["provider"]) == (op, dtype, provider))
            axes[0][col].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=provider)
            axes[1][col].plot([p[0] for p in pts], [100 * p[2] for p in pts], marker="o", label=provider)
        axes[0][col].set(title=f"{op} {dtype}: forward + backward", xlabel="T", ylabel="ms (median)", yscale="log")
        axes[1][col].set(xlabel="T", ylabel="% of measured copy bandwidth (own byte model)")
        axes[1][col].axhline(85, color="grey", linestyle="--", linewidth=0.8)
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
        axes[0][col].legend(fontsize=7)
    meta = data["metadata"]
    fig.suptitle(f"{meta['device_name']} | torch {meta['torch']} | triton {meta['triton']} | {meta['date']} | "
                 f"commit {meta['commit'][:10]} | copy BW {meta['copy_bandwidth_GBps']:.0f} GB/s", fontsize=9)
    fig.tight_layout()
    out = Path(results_json).with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(plot(Path(path)))
