"""One stem per op in every layer (CONTRIBUTING.md, "Where things go"): the @triton.jit kernels of op family
<stem> in ``snnkernels/kernels/triton/<stem>.py``, their launchers in ``snnkernels/ops/<stem>_triton.py``, the
backend-independent part (if any) in ``snnkernels/ops/<stem>.py``, the tests in ``python_tests/ops/test_<stem>*.py``.
The test tree mirrors the package: one folder of ``python_tests/`` per layer (TEST_FOLDERS).

The check reads file names only, so that whoever knows an op's name finds every layer of it by that name; the
few exceptions are listed below with their reason, and a synthetic tree proves the check can fail.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("triton", "native", "cupy")

# @triton.jit helpers called by several op families: device code with no op of its own
SHARED_KERNEL_MODULES = {
    "neuron_step": "the neuron's step, backward step and recompute schedule, run by every kernel with a neuron",
    "surrogate": "the surrogate gradients' device code, called by every kernel that fires",
    "row_tiles": "tiles over rows of H * W planes, walked by the attention and neuron kernels",
    "dta_terms": "DTA's gate terms, shared by the pooled-attention DTA sweeps and the DTA neuron",
}
# modules of ops/ that serve every op rather than being one: (why)
SHARED_OPS_MODULES = {
    "registry": "the op registry and capability table: one entry per op of every family",
    "leaky_settings": "the leaky op's arguments, defined once for leaky.py and every backend's launcher",
    "triton_launch": "compile options, tiles and grids of every Triton launch",
    "layout": "strides and layouts every op's launcher brings its tensors to",
    "autograd_helpers": "arguments of the ops' autograd.Functions (distinct tensors, fresh floats)",
}
# op families whose tests share a file named after another stem: (that file, why)
TESTED_IN = {
    "staa_step": (
        "ops/test_staa_loop.py",
        "STAA-LIF's loop is tested on its step kernels and its persistent kernel alike",
    ),
    "tcsa_step": (
        "ops/test_ma_snn_fused.py",
        "TCSA-LIF's step runs on MA-SNN's attention sweeps and is tested with them",
    ),
    "tna": ("ops/test_pooled_attention.py", "T-NA is DTA's attention, tested beside DTA's product sweeps"),
}
# ops/<stem>_triton.py without a kernels/triton/<stem>.py: (why); none today
TRITON_OPS_WITHOUT_KERNELS: dict[str, str] = {}


def naming_problems(kernel_modules: set[str], ops_modules: set[str], test_files: set[str]) -> list[str]:
    """What breaks the one-stem rule, given the module names (no ``.py``) under kernels/triton/ and ops/ and
    the test files' paths under python_tests/; package and private modules (``__init__``, ``_device``) are skipped."""
    kernels = {m for m in kernel_modules if not m.startswith("_")} - set(SHARED_KERNEL_MODULES)
    ops = {m for m in ops_modules if not m.startswith("_")} - set(SHARED_OPS_MODULES)
    problems = []
    for stem in sorted(kernels):
        if f"{stem}_triton" not in ops:
            problems.append(f"kernels/triton/{stem}.py has no ops/{stem}_triton.py")
        if stem in TESTED_IN:
            if TESTED_IN[stem][0] not in test_files:
                problems.append(f"kernels/triton/{stem}.py: its tests' file {TESTED_IN[stem][0]} is gone")
        elif not any(t.startswith(f"ops/test_{stem}") and t.endswith(".py") for t in test_files):
            problems.append(f"kernels/triton/{stem}.py has no python_tests/ops/test_{stem}*.py")
    for module in sorted(ops):
        stem, _, backend = module.rpartition("_")
        if backend == "triton":
            if stem not in kernels and stem not in TRITON_OPS_WITHOUT_KERNELS:
                problems.append(f"ops/{module}.py has no kernels/triton/{stem}.py")
        elif (backend not in BACKENDS or not stem) and not any(f"{module}_{b}" in ops for b in BACKENDS):
            # a backend-independent part serves at least one backend of its op
            problems.append(f"ops/{module}.py names no op: no ops/{module}_<backend>.py beside it")
    return problems


# python_tests/<folder>/ -> what its tests cover; the package-wide tests (architecture, docs, errors, the
# top-level modules surrogate.py, firing.py, backends.py, diagnostics.py) stay in python_tests/ itself
TEST_FOLDERS = {
    "ops": "snnkernels/ops (with its kernels and references): every op against its eager reference",
    "kernels": "snnkernels/kernels: the Triton kernels compiled for GPU targets, their machine code",
    "reference": "snnkernels/reference: the references against re-implementations of the official code",
    "nn": "snnkernels/nn: the modules and their SpikingJelly contract",
    "models": "snnkernels/models: the networks",
    "build": "setup.py, csrc/ and the packaging: the native build and the release",
    "bench": "bench/: the benchmarks' machinery",
}


def _test_files() -> set[str]:
    return {p.relative_to(ROOT / "python_tests").as_posix() for p in (ROOT / "python_tests").rglob("test_*.py")}


def test_the_test_tree_mirrors_the_package():
    folders = {p.parent.relative_to(ROOT / "python_tests").as_posix() for p in (ROOT / "python_tests").rglob("*.py")}
    assert folders - {"."} == set(TEST_FOLDERS), "a test folder not in TEST_FOLDERS, or one listed there is empty"
    for folder in ("ops", "kernels", "reference", "nn", "models"):
        assert (ROOT / "snnkernels" / folder).is_dir(), folder
    assert (ROOT / "bench").is_dir()


def _modules(folder: str) -> set[str]:
    return {p.stem for p in (ROOT / folder).glob("*.py")}


def test_every_op_has_one_stem_in_every_layer():
    tests = _test_files()
    problems = naming_problems(_modules("snnkernels/kernels/triton"), _modules("snnkernels/ops"), tests)
    assert not problems, problems


def test_the_exceptions_are_current():
    kernels = _modules("snnkernels/kernels/triton")
    assert set(SHARED_KERNEL_MODULES) <= kernels, "a shared helper module listed here is gone"
    for stem, (test_file, _) in TESTED_IN.items():
        assert stem in kernels, stem
        assert stem in (ROOT / "python_tests" / test_file).read_text(), f"{test_file} does not test {stem}"
        assert not list((ROOT / "python_tests" / "ops").glob(f"test_{stem}*.py")), f"{stem} has its own test file now"
    assert set(SHARED_OPS_MODULES) <= _modules("snnkernels/ops"), "a shared ops module listed here is gone"
    for stem in TRITON_OPS_WITHOUT_KERNELS:
        assert stem not in kernels, stem


def test_the_check_fails_on_a_tree_that_breaks_the_rule():
    kernels = {"__init__", "leaky", "neuron_step", "orphan", "untested", "tna"}
    ops = {
        "__init__",
        "_device",
        "leaky",
        "leaky_triton",
        "leaky_native",
        "untested_triton",
        "stray_triton",
        "lonely",
        "orphan_helpers",
        "tna_triton",
    }
    tests = {"ops/test_leaky.py", "ops/test_orphan_sweeps.py", "nn/test_untested.py"}
    assert naming_problems(kernels, ops, tests) == [
        "kernels/triton/orphan.py has no ops/orphan_triton.py",
        "kernels/triton/tna.py: its tests' file ops/test_pooled_attention.py is gone",
        "kernels/triton/untested.py has no python_tests/ops/test_untested*.py",
        "ops/lonely.py names no op: no ops/lonely_<backend>.py beside it",
        "ops/orphan_helpers.py names no op: no ops/orphan_helpers_<backend>.py beside it",
        "ops/stray_triton.py has no kernels/triton/stray.py",
    ]
    # the rule holds on the same tree once the missing files are there
    assert (
        naming_problems(
            kernels | {"stray"},
            ops | {"orphan_triton", "lonely_native", "orphan_helpers_cupy"},
            tests | {"ops/test_untested.py", "ops/test_stray.py", "ops/test_pooled_attention.py"},
        )
        == []
    )


def test_the_former_reference_path_gives_the_same_functions():
    from snnkernels.reference import leaky, neuron

    for name in neuron.__all__:
        assert getattr(neuron, name) is getattr(leaky, name), name


def test_no_test_module_imports_another_folders_test_module():
    """pytest puts each test file's own folder on sys.path: a bare ``from test_x import`` of another folder's
    module would work or not depending on which files ran first. Shared helpers live in python_tests/."""
    import ast

    folder_of = {p.stem: p.parent for p in (ROOT / "python_tests").rglob("test_*.py")}
    problems = []
    for path in (ROOT / "python_tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in folder_of:
                if folder_of[node.module] != path.parent:
                    problems.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    assert not problems, problems
