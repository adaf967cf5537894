"""No module of the project reaches into another module's private names: shared helpers live in a module of
their own under a public name (``snnkernels/ops/triton_launch.py``, ``ops/layout.py``, ``ops/autograd_helpers.py``,
``nn/attention_inputs.py``, ``kernels/triton/row_tiles.py``, ...), so a new op imports them from one place.

The rule, checked by parsing (``ast``) every module under ``snnkernels/``, ``bench/`` and ``scripts/``:

- a name with one leading underscore (``_f32``; dunders such as ``__version__`` are public) belongs to the module
  that defines it: ``from X import _name`` and ``alias._name`` (``alias`` bound to another project module by an
  import) fail when X is another module of the project;
- a module with one leading underscore (``snnkernels/_checks.py``, ``snnkernels/ops/_device.py``,
  ``snnkernels/models/_blocks.py``, the compiled ``snnkernels._C``) belongs to its package: any module inside
  that package may import it (``from snnkernels import _checks`` in ``snnkernels/functional.py``), a module
  outside may not (``bench/`` imports ``snnkernels.models``, not ``snnkernels.models._blocks``).

``python_tests/`` is not checked: white-box tests may import a private name to pin down an internal (e.g.
``snnkernels.functional._fused_forward``); such a test is updated together with the code it inspects.

Each violation is reported as ``file:line``. The synthetic sources below prove the check fails where it should.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("snnkernels", "bench", "scripts")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(module: str, root: Path) -> bool:
    return (root.joinpath(*module.split(".")) / "__init__.py").is_file()


def _in_project(module: str) -> bool:
    return module.split(".")[0] in CHECKED


def _binds(package: str, name: str, root: Path) -> bool:
    """Whether the package's ``__init__.py`` binds ``name`` itself (a def, class, assignment or import)."""
    tree = ast.parse((root.joinpath(*package.split(".")) / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


def _is_submodule(package: str, name: str, root: Path) -> bool:
    """Whether ``package.name`` is a module: a file or package in the tree, or (a compiled extension such as
    ``_C``, absent from a fresh checkout) a name the package's ``__init__.py`` does not define."""
    if not _is_package(package, root):
        return False
    base = root.joinpath(*package.split("."))
    if (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file():
        return True
    return not _binds(package, name, root)


def _is_module(module: str, root: Path) -> bool:
    """Whether the dotted name is a module of the tree (a file, a package or a compiled submodule)."""
    parent, _, name = module.rpartition(".")
    base = root.joinpath(*module.split("."))
    return (
        base.with_suffix(".py").is_file()
        or (base / "__init__.py").is_file()
        or (bool(parent) and _is_submodule(parent, name, root))
    )


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` of a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _inside(importer: str, package: str) -> bool:
    return importer == package or importer.startswith(package + ".")


def _private_module_violation(importer: str, module: str) -> str | None:
    """The first private component of ``module`` whose package does not contain ``importer``."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part) and not _inside(importer, ".".join(parts[:i])):
            return ".".join(parts[: i + 1])
    return None


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def violations(source: str, importer: str, is_package: bool = False, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, message) for each private name or module that ``importer``'s ``source`` takes from another module."""
    found: list[tuple[int, str]] = []
    modules: dict[str, str] = {}  # local name -> project module it is bound to
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _in_project(alias.name):
                    continue
                bad = _private_module_violation(importer, alias.name)
                if bad:
                    found.append((node.lineno, f"import {alias.name}: {bad} is private to its package"))
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, importer, is_package)
            if not _in_project(target):
                continue
            bad = _private_module_violation(importer, target)
            if bad:
                found.append((node.lineno, f"from {target} import ...: {bad} is private to its package"))
            for alias in node.names:
                local = alias.asname or alias.name
                if _is_submodule(target, alias.name, root):
                    modules[local] = f"{target}.{alias.name}"
                    if _private(alias.name) and not _inside(importer, target):
                        found.append((node.lineno, f"from {target} import {alias.name}: a module private to {target}"))
                elif _private(alias.name) and target != importer:
                    found.append((node.lineno, f"from {target} import {alias.name}: a private name of {target}"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        owner = _dotted(node.value)
        if owner is None or owner.split(".")[0] not in modules:
            continue
        head, _, rest = owner.partition(".")
        module = ".".join(filter(None, [modules[head], rest]))
        if module == importer or not _is_module(module, root):
            continue
        if _is_module(f"{module}.{node.attr}", root):
            if not _inside(importer, module):
                found.append((node.lineno, f"{owner}.{node.attr}: a module private to {module}"))
        else:
            found.append((node.lineno, f"{owner}.{node.attr}: a private name of {module}"))
    return sorted(found)


def project_violations(root: Path = ROOT) -> list[str]:
    out = []
    for top in CHECKED:
        for path in sorted((root / top).rglob("*.py")):
            importer = _module_name(path, root)
            for line, message in violations(path.read_text(), importer, path.name == "__init__.py", root):
                out.append(f"{path.relative_to(root)}:{line}: {message}")
    return out


def test_no_private_name_is_imported_from_another_module():
    found = project_violations()
    assert not found, "private names imported across modules (give the helper a public home):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source, importer, line",
    [
        (
            "from snnkernels.ops.pooled_attention_triton import launch_rows, _na_kwargs\n",
            "snnkernels.ops.tna_triton",
            1,
        ),
        ("import torch\nfrom .pooled_attention_triton import _na_kwargs\n", "snnkernels.ops.tna_triton", 2),
        ("from ..ops.pooled_attention_triton import _na_kwargs\n", "snnkernels.nn.fused", 1),
        ("def f():\n    from snnkernels.models._blocks import SeqToANN\n", "bench.attention", 2),
        ("import snnkernels.ops._device\n", "bench.run", 1),
        ("from snnkernels.ops import _device\n", "snnkernels.nn.fused", 1),
        (
            "from snnkernels.ops import pooled_attention_triton as R\n\nR._na_kwargs(None)\n",
            "snnkernels.ops.tna_triton",
            3,
        ),
        (
            "import snnkernels.ops.pooled_attention_triton\n\n"
            "snnkernels.ops.pooled_attention_triton._na_kwargs(None)\n",
            "bench.run",
            3,
        ),
        (
            "from snnkernels.kernels.triton import neuron_step\nneuron_step._reset\n",
            "snnkernels.kernels.triton.leaky",
            2,
        ),
    ],
    ids=[
        "absolute",
        "relative",
        "parent-relative",
        "private-module-outside",
        "import-private-module",
        "private-module-of-a-sibling-package",
        "module-attribute",
        "dotted-attribute",
        "kernel-helper",
    ],
)
def test_a_private_import_is_reported(source, importer, line):
    """Synthetic sources: each takes one private name or module it may not, and is reported at its line."""
    found = violations(source, importer)
    assert [n for n, _ in found] == [line], found


@pytest.mark.parametrize(
    "source, importer",
    [
        ("from snnkernels import _checks\n", "snnkernels.functional"),
        ("from . import _checks\n\n_checks.check_sequence\n", "snnkernels.nn.neuron"),
        ("from snnkernels import _C\n", "snnkernels._ext"),
        ("from ._blocks import SeqToANN\n", "snnkernels.models.dta_snn"),
        ("from ._device import on_device_of\n", "snnkernels.ops.tna_triton"),
        ("from snnkernels._version import __version__\n", "snnkernels.diagnostics"),
        ("from snnkernels.models import SeqToANN\nfrom torch import _C\n", "bench.attention"),
    ],
    ids=[
        "private-module-in-its-package",
        "relative-private-module",
        "compiled-extension",
        "models-private-module",
        "ops-private-module",
        "dunder",
        "public-and-third-party",
    ],
)
def test_what_is_allowed_is_not_reported(source, importer):
    assert violations(source, importer) == []


def test_the_report_names_file_and_line(tmp_path):
    """A whole tree with one offending module: reported as path:line."""
    pkg = tmp_path / "snnkernels"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "helpers.py").write_text("def _tile():\n    return 1\n")
    (pkg / "ops" / "user.py").write_text('"""doc"""\nfrom .helpers import _tile\n')
    assert project_violations(tmp_path) == [
        "snnkernels/ops/user.py:2: from snnkernels.ops.helpers import _tile: a private name of snnkernels.ops.helpers"
    ]
