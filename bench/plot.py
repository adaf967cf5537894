"""Plots from a results JSON only (nothing is re-measured): for each mode, time vs T per provider, and the
achieved bandwidth (provider's own byte model) as a fraction of the measured copy bandwidth, one panel
pair per (op, shape, dtype). Saved next to the JSON as ``<stem>_<mode>.png``.

    python -m bench.plot bench/results/<file>.json [...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

MODE_ORDER = ("fwd+bwd", "fwd", "inference")


def _group(row: dict) -> tuple[str, str, str]:
    """(op, shape without T, dtype): one panel pair."""
    return row["op"], row["shape"].split("x", 1)[1], row["dtype"]


def plot(results_json: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(results_json).read_text())
    meta = data["metadata"]
    ok = [r for r in data["rows"] if r.get("status") == "ok"]
    providers = sorted({r["provider"] for r in ok})
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(providers)}
    paths = []
    for mode in [m for m in MODE_ORDER if any(r["mode"] == m for r in ok)]:
        rows = [r for r in ok if r["mode"] == mode]
        groups = sorted({_group(r) for r in rows})
        ncols = min(3, len(groups))
        nrows = math.ceil(len(groups) / ncols)
        fig, axes = plt.subplots(2 * nrows, ncols, figsize=(5.2 * ncols, 6.4 * nrows), squeeze=False)
        for i, (op, shape, dtype) in enumerate(groups):
            ax_t, ax_b = axes[2 * (i // ncols)][i % ncols], axes[2 * (i // ncols) + 1][i % ncols]
            for provider in providers:
                pts = sorted(
                    (r["T"], r["ms_p50"], r["ms_p20"], r["ms_p80"], r["fraction_of_copy_bw"])
                    for r in rows
                    if _group(r) == (op, shape, dtype) and r["provider"] == provider
                )
                if not pts:
                    continue
                T = [p[0] for p in pts]
                ax_t.errorbar(
                    T,
                    [p[1] for p in pts],
                    yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                    marker="o",
                    ms=4,
                    capsize=2,
                    label=provider,
                    color=colors[provider],
                )
                ax_b.plot(T, [100 * p[4] for p in pts], marker="o", ms=4, label=provider, color=colors[provider])
            ax_t.set(
                title=f"{op} [T, {shape.replace('x', ', ')}] {dtype}: {mode}",
                ylabel="ms (median, p20-p80)",
                yscale="log",
            )
            ax_b.set(xlabel="T", ylabel="% of copy bandwidth (own byte model)")
            ax_b.axhline(100, color="grey", linestyle="--", linewidth=0.8)
            ax_b.set_ylim(bottom=0)
            ts = sorted({r["T"] for r in rows if _group(r) == (op, shape, dtype)})
            for ax in (ax_t, ax_b):
                ax.set_xscale("log", base=2)
                ax.set_xticks(ts)
                ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.grid(alpha=0.3)
            ax_t.legend(fontsize=7)
        for j in range(len(groups), nrows * ncols):
            axes[2 * (j // ncols)][j % ncols].axis("off")
            axes[2 * (j // ncols) + 1][j % ncols].axis("off")
        fig.suptitle(
            f"{meta['device_name']} | torch {meta['torch']} | triton {meta['triton']} | "
            f"spikingjelly {meta.get('spikingjelly')} | {meta['date']} | commit {meta['commit'][:10]} | "
            f"copy BW {meta['copy_bandwidth_GBps']:.0f} GB/s",
            fontsize=8,
        )
        fig.tight_layout()
        out = Path(results_json).with_name(f"{Path(results_json).stem}_{mode.replace('+', '-')}.png")
        fig.savefig(out, dpi=100)
        plt.close(fig)
        paths.append(out)
    return paths


if __name__ == "__main__":
    for path in sys.argv[1:]:
        for png in plot(Path(path)):
            print(png)
