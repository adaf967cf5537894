"""bench.predicted_vs_measured joins the static model's estimates with the benchmark's timings: the measured
side is written by bench.run's own writer, the static rows carry the keys of the committed static report's
rows. Checked: the per-direction sums, the ratio against the measuring GPU's estimate, the cases on one side
only, a device the model does not cover, and the per-kernel table."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench import predicted_vs_measured as pvm
from bench.registry import Case
from bench.run import metadata, result_row, write_results

ROOT = Path(__file__).resolve().parents[2]


def _static_row(case: str, kernel: str, phase: str | None, h100: float, h200: float, source: str = "lif") -> dict:
    # the committed report's row keys, with the values the test needs
    template = json.loads(pvm.newest_static(ROOT / "bench" / "results").read_text())["rows"][0]
    row = dict(template, case=case, source=source, kernel=kernel, est_us_H100=h100, est_us_H200=h200, launches=1)
    if phase is None:
        row.pop("phase", None)
    else:
        row["phase"] = phase
    return row


def _write_static(tmp_path: Path, rows: list[dict], failed: dict[str, str] | None = None) -> Path:
    totals = [{"case": c, "source": "lif", "error": e} for c, e in (failed or {}).items()]
    path = tmp_path / "2026-12-06_static-sm90.json"
    path.write_text(json.dumps({"meta": {"commit": "abc", "triton": "3.6.0"}, "rows": rows, "totals": totals}))
    return path


def _measured(tmp_path: Path, device_name: str | None, timings: list[tuple[Case, str, str, float]]) -> Path:
    """Results JSON through bench.run's writer; ``device_name`` None: this CPU's own metadata."""
    meta = metadata("cpu")
    if device_name is not None:
        meta.update(device="cuda", device_name=device_name, device_slug="nvidia-test")
    rows = [
        result_row(case, provider, meta["device"], mode=mode, ms_p50=ms, status="ok")
        for case, provider, mode, ms in timings
    ]
    (path,) = [p for p in write_results(rows, meta, tmp_path / "results", plot=False) if p.suffix == ".json"]
    return path


def _table(md: str) -> dict[tuple[str, str], list[str]]:
    out = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("case", "kernel") and len(cells) > 2:
            out[(cells[0], cells[1])] = cells
    return out


SMALL = Case("lif", (4, 8, 16), torch.float32)
OTHER = Case("lif", (8, 8, 16), torch.float32)
UNKNOWN = Case("tcja", (2, 3, 4, 5, 6), torch.float32)


def _static_two_cases(tmp_path: Path) -> Path:
    return _write_static(
        tmp_path,
        [
            _static_row("lif 4x8x16 float32", "leaky_fwd_kernel", "fwd", 10.0, 8.0),
            _static_row("lif 4x8x16 float32", "leaky_bwd_kernel", "bwd", 30.0, 12.0),
            _static_row("lif 8x8x16 float32", "leaky_fwd_kernel", "fwd", 20.0, 16.0),
            _static_row("lif 8x8x16 float32", "leaky_bwd_kernel", "bwd", 60.0, 24.0),
            _static_row("spike_pack_triton (samples)", "spike_pack_fwd_kernel", "samples", 0.2, 0.2, "registry"),
        ],
        failed={"lif 16x8x16 float32": "ValueError: boom"},
    )


def test_ratio_per_direction_and_one_sided_cases(tmp_path, capsys):
    static = _static_two_cases(tmp_path)
    results = _measured(
        tmp_path,
        "NVIDIA H100 80GB HBM3",
        [
            (SMALL, "snnkernels-triton", "fwd", 0.025),  # 25 us against 10 us
            (SMALL, "snnkernels-triton", "fwd+bwd", 0.06),  # 60 us against 10 + 30 us
            (SMALL, "torch-eager", "fwd", 5.0),  # another provider: not ours
            (SMALL, "snnkernels-triton", "inference", 0.01),
            (UNKNOWN, "snnkernels-triton", "fwd+bwd", 0.5),
        ],
    )
    assert pvm.main([str(results), "--static", str(static)]) == 0
    written = results.with_name(results.stem + "_predicted-vs-measured.md")
    md = written.read_text()
    assert md in capsys.readouterr().out
    t = _table(md)
    assert t[("lif 4x8x16 float32", "fwd")][2:7] == ["10.0", "8.0", "25.0", "NVIDIA H100 80GB HBM3", "2.50"]
    assert t[("lif 4x8x16 float32", "fwd+bwd")][2:7] == ["40.0", "20.0", "60.0", "NVIDIA H100 80GB HBM3", "1.50"]
    assert t[("lif 4x8x16 float32", "fwd")][7] == "both"
    assert t[("lif 4x8x16 float32", "inference")][7].startswith("measured only")
    assert t[("tcja 2x3x4x5x6 float32", "fwd+bwd")][7] == "measured only (no static case)"
    for mode, est in (("fwd", "20.0"), ("fwd+bwd", "80.0")):
        assert t[("lif 8x8x16 float32", mode)][2] == est
        assert t[("lif 8x8x16 float32", mode)][7] == "predicted only (not measured)"
    assert t[("lif 16x8x16 float32", "-")][7] == "static capture failed: ValueError: boom"
    assert not any(case.startswith("spike_pack") for case, _ in t)  # registry samples are no benchmark case
    assert "torch-eager" not in md and "5000.0" not in md


def test_h200_results_use_the_h200_estimate(tmp_path):
    static = _static_two_cases(tmp_path)
    results = _measured(tmp_path, "NVIDIA H200", [(SMALL, "snnkernels-triton", "fwd+bwd", 0.03)])
    out = tmp_path / "joined.md"
    assert pvm.main([str(results), "--static", str(static), "--out", str(out)]) == 0
    assert _table(out.read_text())[("lif 4x8x16 float32", "fwd+bwd")][6] == "1.50"  # 30 us against 8 + 12 us


def test_a_cpu_run_prints_predictions_only(tmp_path, capsys):
    static = _static_two_cases(tmp_path)
    results = _measured(tmp_path, None, [(SMALL, "snnkernels-triton", "fwd+bwd", 3.0)])
    assert pvm.main([str(results), "--static", str(static)]) == 0
    out = capsys.readouterr().out
    assert "is not a GPU the model covers" in out
    t = _table(results.with_name(results.stem + "_predicted-vs-measured.md").read_text())
    assert t[("lif 4x8x16 float32", "fwd+bwd")][2:4] == ["40.0", "20.0"]
    assert all(len(cells) == 5 for cells in t.values())  # no measured column, no ratio
    assert "3000.0" not in out


def test_static_rows_without_phase_predict_fwd_bwd_only(tmp_path):
    static = _write_static(
        tmp_path,
        [
            _static_row("lif 4x8x16 float32", "leaky_fwd_kernel", None, 10.0, 8.0),
            _static_row("lif 4x8x16 float32", "leaky_bwd_kernel", None, 30.0, 12.0),
        ],
    )
    pred = pvm.predicted(json.loads(static.read_text()))
    assert pred == {"lif 4x8x16 float32": {"fwd+bwd": {"H100": 40.0, "H200": 20.0}}}


def test_notes_one_row_per_kernel_min_max_over_cases(tmp_path, capsys):
    static = _static_two_cases(tmp_path)
    assert pvm.main(["--notes", "--static", str(static)]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATES from the static model, not measurements" in out
    t = {cells[0]: cells for cells in _table(out).values()}
    assert set(t) == {"leaky_fwd_kernel", "leaky_bwd_kernel", "spike_pack_fwd_kernel"}
    assert t["leaky_bwd_kernel"][1:6] == ["bwd", "2", "1", "30.0 - 60.0", "12.0 - 24.0"]
    assert t["leaky_bwd_kernel"][7] == "lif 8x8x16 float32"
    assert t["spike_pack_fwd_kernel"][2] == "1 (registry samples, tiny shapes)"
