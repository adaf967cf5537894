"""The documentation site builds offline (scripts/build_docs.sh) with any Python that has pdoc, not only the
dev venv: the API reference from the docstrings (pdoc) covers the public API, every public module gets a page
that names its public functions and classes, and every hand-written page of docs/ is in the site, linked
from its index."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import build_dist

pytest.importorskip("pdoc")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from a copy of the working tree that has no .venv, with the running Python found on PATH
    (as in any other environment that has torch and pdoc)."""
    tree = tmp_path_factory.mktemp("tree")
    build_dist.copy_tree(tree)
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    assert not (tree / ".venv").exists()
    proc = subprocess.run(
        ["bash", str(tree / "scripts" / "build_docs.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path_factory.mktemp("elsewhere"),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_api_reference_builds(site):
    api = site / "api"
    pages = {p.relative_to(api).as_posix() for p in api.rglob("*.html")}
    for module in ("functional", "nn", "surrogate", "backends", "reference", "neuron_models", "diagnostics"):
        assert f"snnkernels/{module}.html" in pages, sorted(pages)
    functional = (api / "snnkernels" / "functional.html").read_text()
    for name in ("multistep_lif", "multistep_leaky", "tcja", "txa", "dta"):
        assert f'id="{name}"' in functional, name
    nn_page = (api / "snnkernels" / "nn.html").read_text()
    for name in ("LIFNode", "ParametricLIFNode", "TCJA", "DTA"):
        assert f'id="{name}"' in nn_page, name


def test_hand_written_pages_are_in_the_site(site):
    index = (site / "index.html").read_text()
    assert 'href="api/index.html"' in index
    for source in sorted((ROOT / "docs").glob("*.md")):
        page = site / "docs" / f"{source.stem}.html"
        assert page.exists(), page
        assert f'href="docs/{source.stem}.html"' in index, source.name
        text = page.read_text()
        heading = re.search(r"^#\s+(.+)$", source.read_text(), re.M).group(1).replace("`", "")
        assert heading.split()[0] in text and "<h1" in text, source.name
        if "|---" in source.read_text():
            assert "<table>" in text, f"{source.name}: tables not converted"


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
