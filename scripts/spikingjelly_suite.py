"""Run SpikingJelly's own tests with its neurons and attention replaced by snnkernels' (docs/spikingjelly.md
"SpikingJelly's own tests").

Usage (SpikingJelly's tests are not part of its PyPI package: point at a checkout of its repository)::

    .venv/bin/python scripts/spikingjelly_suite.py --tests /path/to/spikingjelly/test/activation_based \\
        [--files test_memory.py test_functional.py ...] [--backends torch native triton] [--out results.json]

Each test file runs once on SpikingJelly itself and once per snnkernels backend, in separate pytest processes.
In the snnkernels runs this file, loaded as a pytest plugin, replaces ``IFNode``, ``LIFNode``,
``ParametricLIFNode`` (``spikingjelly.activation_based.neuron``) and ``MultiDimensionalAttention``
(``spikingjelly.activation_based.layer``) by snnkernels' classes bound to the backend, before the tests are
collected, and records for every test whether it built one of them. A test counts for the drop-in when it
built one of our classes; it must pass on every backend wherever it passes on SpikingJelly itself.
The Triton backend runs on the CPU under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

SWAP_ENV = "SNNKERNELS_SJ_SWAP_BACKEND"


def _installed_version() -> str | None:
    """The installed SpikingJelly's distribution version (the package has no ``__version__``)."""
    from importlib import metadata

    try:
        return metadata.version("spikingjelly")
    except metadata.PackageNotFoundError:
        return None


RECORD_ENV = "SNNKERNELS_SJ_SWAP_RECORD"
# every file of SpikingJelly's test/activation_based (master, 2026-08) that builds IFNode, LIFNode,
# ParametricLIFNode or MultiDimensionalAttention and runs on a CPU; some do not import against the 2.0.0 release
DEFAULT_FILES = (
    "test_memory.py",
    "test_functional.py",
    "test_functional_neuron.py",
    "test_encoding_attention.py",
    "test_neuron_variants.py",
    "test_noisy_and_misc.py",
    "test_checkpointing.py",
    "test_compile_compat.py",
    "test_roofline.py",
    "test_spikformer_model.py",
    "test_neuron_kernel_surrogate_contract.py",
    "test_profiler.py",
    "test_ac.py",
    "test_online_learning.py",
    "test_inductor_cache.py",
    "test_learning.py",
    "test_pipeline.py",
    "test_activation_aware_ifnode.py",
    "test_ilif_node.py",
    "test_triton_neuron.py",
    "test_precision_conversion.py",
    "test_op_counter_neuron_state.py",
    "test_op_counter_snn_energy.py",
    "test_op_counter_spikesim_event_energy.py",
    "test_op_counter_neuromc_runtime.py",
)
NEURONS = ("IFNode", "LIFNode", "ParametricLIFNode")
# test files whose failures on our classes are deliberate differences (docs/spikingjelly.md "Deliberate
# differences"): SpikingJelly's op counters and energy estimators count the eager ops inside its own BaseNode
# classes, and our neurons run one fused op
DELIBERATE = {"test_op_counter_": "op counters and energy estimators see inside SpikingJelly's BaseNode only"}

# -- the pytest plugin (active only when SWAP_ENV is set) ---------------------------------------------------
_BUILT: Counter = Counter()


def _bound(cls: type, backend: str) -> type:
    """``cls`` with ``backend`` as its default backend, counting its instances."""

    class Bound(cls):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("backend", backend)
            super().__init__(*args, **kwargs)
            _BUILT[cls.__name__] += 1

    Bound.__name__ = cls.__name__
    Bound.__qualname__ = cls.__qualname__
    return Bound


def pytest_configure(config) -> None:
    backend = os.environ.get(SWAP_ENV)
    if not backend:
        return
    from spikingjelly.activation_based import layer, neuron

    from snnkernels import nn as snn

    for name in NEURONS:
        setattr(neuron, name, _bound(getattr(snn, name), backend))
    # the attention has no native kernels: "auto" (the eager reference on the CPU) stands in for "native"
    attention = _bound(snn.MultiDimensionalAttention, "auto" if backend == "native" else backend)
    layer.MultiDimensionalAttention = attention
    layer.attention.MultiDimensionalAttention = attention


_OUTCOMES: dict = {}


def pytest_runtest_setup(item) -> None:
    _BUILT.clear()


def pytest_runtest_logreport(report) -> None:
    # a test's outcome is its call phase's, or its setup phase's when that failed or skipped
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES[report.nodeid] = {
            "outcome": report.outcome,
            "built": dict(_BUILT),
            "error": str(report.longrepr).splitlines()[-1][:300] if report.outcome == "failed" else None,
        }


def pytest_unconfigure(config) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        import spikingjelly

        _OUTCOMES["__spikingjelly__"] = {"version": _installed_version(), "file": spikingjelly.__file__}
        Path(path).write_text(json.dumps(_OUTCOMES, indent=1))


# -- the runner --------------------------------------------------------------------------------------------
def _run(test_dir: Path, files: list[str], backend: str | None, timeout: int) -> dict:
    """{nodeid: {"outcome", "built", "error"}} of one pytest process over ``files``."""
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "outcomes.json"
        path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
        env = dict(os.environ, PYTHONPATH=path)
        env[RECORD_ENV] = str(record)
        env.pop(SWAP_ENV, None)
        if backend is not None:
            env[SWAP_ENV] = backend
        if backend == "triton":
            env["TRITON_INTERPRET"] = "1"
        # an empty ini file: SpikingJelly's pytest settings would put its source tree on sys.path, and the tests
        # must run against the installed package
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        # a copy of the test folder alone: the repository's conftest.py would also put its source tree first
        copy = Path(tmp) / "tests"
        shutil.copytree(test_dir, copy)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-c",
            str(ini),
            "-p",
            "spikingjelly_suite",
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "--rootdir",
            tmp,
            *[str(copy / f) for f in files],
        ]
        run = subprocess.run(cmd, env=env, cwd=tmp, timeout=timeout, capture_output=True, text=True)
        outcomes = json.loads(record.read_text()) if record.exists() else {}
        if len(outcomes) <= 1:
            raise RuntimeError(f"pytest ran no test ({' '.join(cmd)}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        where = outcomes.pop("__spikingjelly__", {}).get("file", "")
        if "site-packages" not in where:
            raise RuntimeError(f"the tests imported SpikingJelly from {where!r}, not from the installed package")
        return outcomes


def summarize(results: dict[str, dict]) -> dict:
    """Per backend: the tests that built one of our classes, how many pass, and those that fail where
    SpikingJelly itself passes."""
    reference = results["spikingjelly"]
    summary = {}
    for backend, outcomes in results.items():
        if backend == "spikingjelly":
            continue
        relevant = {k: v for k, v in outcomes.items() if v["built"]}
        regressions = {
            k: v["error"]
            for k, v in relevant.items()
            if v["outcome"] != "passed" and reference.get(k, {}).get("outcome") == "passed"
        }
        deliberate = {k: e for k, e in regressions.items() if _deliberate(k)}
        summary[backend] = {
            "tests_building_our_classes": len(relevant),
            "passed": sum(v["outcome"] == "passed" for v in relevant.values()),
            "passed_on_spikingjelly": sum(reference.get(k, {}).get("outcome") == "passed" for k in relevant),
            "fail_where_spikingjelly_passes": {k: e for k, e in regressions.items() if k not in deliberate},
            "deliberate_differences": deliberate,
        }
    return summary


def _deliberate(nodeid: str) -> str | None:
    name = nodeid.split("::")[0].rsplit("/", 1)[-1]
    return next((why for prefix, why in DELIBERATE.items() if name.startswith(prefix)), None)


def _git_commit() -> str | None:
    run = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    return run.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", required=True, type=Path, help="SpikingJelly's test/activation_based folder")
    parser.add_argument("--files", nargs="+", default=list(DEFAULT_FILES))
    parser.add_argument("--backends", nargs="+", default=["torch", "native", "triton"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per pytest process")
    parser.add_argument("--out", type=Path, help="write the outcomes and the summary here (JSON)")
    parser.add_argument("--tests-commit", help="the commit of SpikingJelly's repository the tests come from")
    args = parser.parse_args(argv)
    files = [f for f in args.files if (args.tests / f).exists()]
    results = {"spikingjelly": _run(args.tests, files, None, args.timeout)}
    for backend in args.backends:
        results[backend] = _run(args.tests, files, backend, args.timeout)
    summary = summarize(results)
    for backend, row in summary.items():
        print(
            f"{backend}: {row['passed']} of {row['tests_building_our_classes']} tests that build our classes "
            f"pass ({row['passed_on_spikingjelly']} pass on SpikingJelly itself; "
            f"{len(row['deliberate_differences'])} fail by a deliberate difference)"
        )
        for nodeid, error in row["fail_where_spikingjelly_passes"].items():
            print(f"  FAIL {nodeid}: {error}")
        for nodeid in row["deliberate_differences"]:
            print(f"  deliberate ({_deliberate(nodeid)}): {nodeid}")
    if args.out:
        import torch

        meta = {
            "date": datetime.date.today().isoformat(),
            "commit": _git_commit(),
            "device": "cpu",
            "torch": torch.__version__,
            "spikingjelly": _installed_version(),
            "tests": str(args.tests),
            "tests_commit": args.tests_commit,
        }
        args.out.write_text(
            json.dumps({"meta": meta, "files": files, "summary": summary, "outcomes": results}, indent=1)
        )
    return 0 if all(not row["fail_where_spikingjelly_passes"] for row in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
