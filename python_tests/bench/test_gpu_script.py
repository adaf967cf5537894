"""The GPU script's plumbing, checked without a GPU (GPU_CHECK_DRY_RUN=1): a GPU session is too scarce to
lose to a shell typo. The dry run goes through every phase (environment, a small test file, both
benchmarks eager-only on the CPU, plots, the copy to $OUT) and must exit 0 with results in $OUT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(tmp_path: Path, args: list[str], timeout: int, **env_extra: str) -> subprocess.CompletedProcess:
    """``bash bench/gpu_check.sh ARGS`` as a dry run (no GPU), its results under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "SNNKERNELS_BACKEND")}
    env.update(GPU_CHECK_DRY_RUN="1", OUT=str(tmp_path), PYTHON=sys.executable, **env_extra)
    script = str(ROOT / "bench" / "gpu_check.sh")
    return subprocess.run(["bash", script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(sys.platform != "linux", reason="bash script for the Linux GPU machine")
def test_gpu_script_dry_run(tmp_path):
    proc = _dry_run(tmp_path, ["all"], 600, GPU_CHECK_SECONDS="400", TEST_SECONDS="120")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "all phases passed" in log
    # the test order: the GPU-only files first, the CPU-proven build / compile files not at all
    (order,) = [line for line in log.splitlines() if "files in this order:" in line]
    files = order.split("files in this order: ")[1].split(";")[0].split()
    assert files[:2] == ["ops/test_leaky.py", "ops/test_staa_loop.py"], files
    assert "nn/test_checkpointing.py" in files and "build/test_native_build.py" not in files, files
    assert len(files) == len(set(files)) == len(list((ROOT / "python_tests").rglob("test_*.py"))) - 5, files
    assert all((ROOT / "python_tests" / f).is_file() for f in files), files
    results = sorted(p.name for p in tmp_path.glob("*.json"))
    assert any(name.endswith("_attention.json") for name in results), results
    assert any(not name.endswith("_attention.json") for name in results), results
    for name in results:
        rows = json.loads((tmp_path / name).read_text())["rows"]
        assert rows and all(r["status"] in ("ok", "unavailable") for r in rows), name
    assert not list((ROOT / "bench" / "results").glob(f"*{tmp_path.name}*"))
    # predicted vs measured: on the CPU there is nothing to compare, the predictions are still printed
    assert "is not a GPU the model covers (H100 / H200): predictions only" in log
    (joined,) = tmp_path.glob("*_predicted-vs-measured.md")
    assert "| lif 4x64x65536 float32 | fwd+bwd |" in joined.read_text()


@pytest.mark.skipif(sys.platform != "linux", reason="bash script for the Linux GPU machine")
def test_gpu_script_passes_benchmark_arguments_on(tmp_path):
    # the transformers' rows: `bash bench/gpu_check.sh networks --networks ...` reaches bench.networks
    proc = _dry_run(
        tmp_path, ["networks", "--networks", "sdt_v1_cifar", "qkformer_cifar"], 300, GPU_CHECK_SECONDS="300"
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "all phases passed" in log, log[-4000:]
    (result,) = tmp_path.glob("*_networks.json")
    rows = json.loads(result.read_text())["rows"]
    assert [(r["op"], r["provider"], r["status"]) for r in rows] == [
        ("sdt_v1_cifar", "torch-eager", "ok"),
        ("qkformer_cifar", "torch-eager", "ok"),
    ]
