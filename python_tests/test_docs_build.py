"""The API reference builds offline from the docstrings (scripts/build_docs.sh, pdoc) and covers the public
API: every public module gets a page that names its public functions and classes."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("pdoc")
ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_docs.sh"), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    for module in ("functional", "nn", "surrogate", "backends", "reference", "neuron_models"):
        assert f"snnkernels/{module}.html" in pages, sorted(pages)
    functional = (tmp_path / "snnkernels" / "functional.html").read_text()
    for name in ("multistep_lif", "multistep_leaky", "tcja", "txa", "dta"):
        assert f'id="{name}"' in functional, name
    nn_page = (tmp_path / "snnkernels" / "nn.html").read_text()
    for name in ("LIFNode", "ParametricLIFNode", "TCJA", "DTA"):
        assert f'id="{name}"' in nn_page, name


def test_exported_names_agree():
    """Each module's ``__all__`` names only what it has, and a package re-exports a name only where the module
    that defines it exports it too (``from snnkernels.nn.neuron import *`` must give what ``snnkernels.nn``
    gives from it)."""
    import importlib
    import pkgutil
    import sys

    import snnkernels

    missing, unexported = [], []
    for info in pkgutil.walk_packages(snnkernels.__path__, "snnkernels."):
        if ".kernels." in info.name:  # device code; imports Triton
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", ())
        missing += [f"{info.name}.{name}" for name in names if not hasattr(module, name)]
        if not info.ispkg:
            continue
        for name in names:
            home = sys.modules.get(getattr(getattr(module, name, None), "__module__", None) or "")
            if home is not None and home is not module and hasattr(home, "__all__") and name not in home.__all__:
                unexported.append(f"{home.__name__}.{name}")
    assert not missing, missing
    assert not unexported, unexported
