"""What a release ships: the sdist carries everything setup.py compiles (it builds the extension: see
test_torch_matrix.py, which installs from it), the wheel carries py.typed and the license, the extras
install what the examples import, and tqdm is imported only where a progress bar is shown."""

from __future__ import annotations

import ast
import email
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import build_dist

ROOT = Path(__file__).resolve().parents[2]


def test_sdist_carries_the_native_sources(tmp_path):
    """Every C++ / CUDA source and header under csrc/, the license, the changelog and py.typed."""
    with tarfile.open(build_dist.build(tmp_path)) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    wanted = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").rglob("*") if p.suffix in (".cpp", ".cu", ".cuh", ".h")
    }
    wanted |= {
        "LICENSE",
        "CHANGELOG.md",
        "snnkernels/py.typed",
        "setup.py",
        "pyproject.toml",
        "snnkernels/_native_sources.py",
        "snnkernels/_build_log.py",
    }
    assert not wanted - names, sorted(wanted - names)
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))], "compiled files in the sdist"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    with zipfile.ZipFile(build_dist.build(tmp_path_factory.mktemp("wheel"), "wheel")) as archive:
        yield archive


def test_wheel_ships_py_typed_and_the_license(wheel):
    names = wheel.namelist()
    assert "snnkernels/py.typed" in names
    assert "snnkernels/__main__.py" in names and "snnkernels/diagnostics.py" in names
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert "Apache License" in wheel.read(license_file).decode()
    (metadata_file,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_file))
    assert metadata["License-Expression"] == "Apache-2.0"
    examples = [r for r in metadata.get_all("Requires-Dist") if 'extra == "examples"' in r]
    assert {r.split(";")[0].strip() for r in examples} == {"tqdm", "scikit-learn", "matplotlib"}, examples


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_changelog_has_this_version():
    from snnkernels import __version__

    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert f"## {__version__}" in text


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported by the statements at module level (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_top_level_tqdm_import():
    files = [*(ROOT / "snnkernels").rglob("*.py"), *(ROOT / "examples").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    assert files
    offenders = [str(f.relative_to(ROOT)) for f in files if "tqdm" in _top_level_imports(f)]
    assert not offenders, offenders


_WITHOUT_TQDM = """
import runpy, sys
sys.modules["tqdm"] = None  # any import of tqdm fails
script = {script!r}
sys.argv = [script, *sys.argv[1:]]
runpy.run_path(script, run_name="__main__")
"""


def test_example_trains_without_tqdm_when_no_bar_is_shown(tmp_path):
    """``--no-progress`` needs no tqdm: one epoch on a small subset, in one worker, with tqdm unimportable."""
    pytest.importorskip("sklearn")
    script = ROOT / "examples" / "train_digits.py"
    args = [
        "--_worker",
        "torch",
        "--_worker-json",
        str(tmp_path / "run.json"),
        "--epochs",
        "1",
        "--subset",
        "64",
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNNKERNELS_")}
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TQDM.format(script=str(script)), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "epoch   1/1" in out.stdout and (tmp_path / "run.json").exists(), out.stdout[-2000:]
