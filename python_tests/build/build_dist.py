"""The sdist or wheel of the working tree (test_packaging.py, test_torch_matrix.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_tree(dest: Path) -> None:
    """The working tree's files (tracked, and untracked but not ignored): building writes egg-info into the
    source folder, which must not be the checkout."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(source.read_bytes())


def build(out_dir: Path, kind: str = "sdist") -> Path:
    """Builds an sdist (or, ``kind="wheel"``, a pure-Python wheel) of the working tree into ``out_dir``."""
    tree = out_dir / "tree"
    copy_tree(tree)
    env = dict(os.environ, SNNKERNELS_BUILD_NATIVE="0")
    code = f"from setuptools import build_meta; print(build_meta.build_{kind}({str(out_dir)!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"building the {kind} failed:\n{out.stderr[-3000:]}")
    return out_dir / out.stdout.strip().splitlines()[-1]
