"""Comments and docs cite only this repository: no spec sections, tracker issue numbers or paths outside it, and
every section citation names a docs file and a heading that exist.

The one citation form is ``docs/<file>.md "<Heading>"``: the path (in backticks or not), a space (or a line break
and the comment's leader), then the heading's text in double quotes, backticks dropped (``docs/neuron.md
"Charge, fire, reset"``). A bare ``docs/<file>.md`` cites the whole page. CPU only, no imports of snnkernels.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("snnkernels", "csrc", "bench", "scripts", "python_tests", "examples", "docs")
SCANNED_FILES = ("README.md", "CONTRIBUTING.md")
# Text files only: results (JSON, CSV) are data that may hold absolute paths of the machine that made them.
SUFFIXES = {
    ".py",
    ".pyi",
    ".md",
    ".rst",
    ".txt",
    ".cpp",
    ".cc",
    ".c",
    ".h",
    ".hpp",
    ".cu",
    ".cuh",
    ".sh",
    ".toml",
    ".cfg",
    ".ini",
    ".yml",
    ".yaml",
    ".cmake",
    ".in",
}
SKIPPED_PARTS = {"__pycache__", "build", ".pytest_cache"}
THIS_FILE = Path(__file__).resolve()

FORBIDDEN = [
    (re.compile(r"\bspec(?:'s)?\s+(?:sections?\s+)?\d", re.IGNORECASE), "a spec section"),
    (re.compile(r"\bthe spec\b|\bspec\.md\b|reference_spec|\bspec/", re.IGNORECASE), "the spec outside the repository"),
    (re.compile(r"\bissues?\s*#?\d|\bthe issue's\b", re.IGNORECASE), "an issue of a tracker"),
    (
        re.compile(
            r"\.\./shared|/work/shared|\bshared/(?:spec|papers)\b|\buser_pain\b|\bpeers_and_floors\b", re.IGNORECASE
        ),
        "a path outside the repository",
    ),
]

PATH = re.compile(r"(?<![\w/.-])docs/([\w.-]+?\.md)\b`?")
# What may stand between the path and the quoted heading: blanks, or a line break and the next line's comment leader.
GAP = re.compile(r"[ \t]+|[ \t]*\n[ \t]*(?:#+|//+|\*)?[ \t]*")
QUOTED = re.compile(r'"([^"\n]+(?:\n[^"\n]+)?)"')
# A section named next to a path in another form: `docs/x.md, "S"`, `docs/x.md ("S")`, `docs/x.md: "S"`.
NEAR_MISS = re.compile(r'`?\s*[,:(]\s*\(?\s*"')
LEADER = re.compile(r"[ \t]*\n[ \t]*(?:#+|//+|\*)?[ \t]*")
FENCE = re.compile(r"^(```|~~~)")


def normalise(text: str) -> str:
    """A heading or a citation of one: backticks dropped, line breaks (with a comment leader) and runs of blanks
    read as one space."""
    return re.sub(r"\s+", " ", LEADER.sub(" ", text).replace("`", "")).strip()


def headings(markdown: str) -> set[str]:
    found, fenced = set(), False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)):
            found.add(normalise(match.group(1)))
    return found


def docs_headings(root: Path = ROOT) -> dict[str, set[str]]:
    return {p.name: headings(p.read_text(encoding="utf-8")) for p in sorted((root / "docs").glob("*.md"))}


def forbidden_citations(text: str) -> list[str]:
    """'line: what' for each citation of something outside the repository."""
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        problems += [f"{number}: {what}: {line.strip()[:120]}" for pattern, what in FORBIDDEN if pattern.search(line)]
    return problems


def bad_section_citations(text: str, docs: dict[str, set[str]]) -> list[str]:
    """'line: what' for each docs citation whose file or heading does not exist, or that is not in the one form."""
    problems = []
    for match in PATH.finditer(text):
        number = text.count("\n", 0, match.start()) + 1
        name = match.group(1)
        if name not in docs:
            problems.append(f"{number}: no file docs/{name}")
            continue
        rest = text[match.end() :]
        gap = GAP.match(rest)
        quoted = QUOTED.match(rest, gap.end()) if gap else None
        if quoted:
            section = normalise(quoted.group(1))
            if section not in docs[name]:
                problems.append(f'{number}: docs/{name} has no heading "{section}"')
        elif NEAR_MISS.match(rest):
            problems.append(f'{number}: cite a section of docs/{name} as docs/{name} "<Heading>"')
    return problems


def _folders(relative: Path) -> tuple[str, ...]:
    """The folders of a repository path, without python_tests/build/ (the build tests' folder, not an output)."""
    parts = relative.parts[:-1]
    return parts[2:] if parts[:2] == ("python_tests", "build") else parts


def scanned_files(root: Path = ROOT) -> list[Path]:
    files = [root / name for name in SCANNED_FILES]
    for folder in SCANNED_DIRS:
        files += [
            p
            for p in sorted((root / folder).rglob("*"))
            if p.is_file() and p.suffix in SUFFIXES and not SKIPPED_PARTS & set(_folders(p.relative_to(root)))
        ]
    return [p for p in files if p.resolve() != THIS_FILE]


def test_the_scan_covers_the_tree():
    names = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    for expected in (
        "README.md",
        "CONTRIBUTING.md",
        "csrc/README.md",
        "snnkernels/_ext.py",
        "bench/run.py",
        "docs/neuron.md",
        "python_tests/build/test_native_build.py",
        "snnkernels/reference/ma_snn.py",
    ):
        assert expected in names, expected
    assert len(docs_headings()) >= 6


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_citation_outside_the_repository(path):
    problems = forbidden_citations(path.read_text(encoding="utf-8", errors="replace"))
    assert not problems, "\n".join(problems)


def test_docs_section_citations_exist():
    docs = docs_headings()
    problems = []
    for path in scanned_files():
        rel = path.relative_to(ROOT).as_posix()
        problems += [
            f"{rel}:{p}" for p in bad_section_citations(path.read_text(encoding="utf-8", errors="replace"), docs)
        ]
    assert not problems, "\n".join(problems)


# The checks themselves, on synthetic text: each kind of bad citation is caught and the good forms pass.

SYNTHETIC_DOCS = {
    "neuron.md": headings(
        "# Top\n\n## Charge, fire, reset\n\n```\n## not a heading\n```\n### `return_v_seq` and more\n"
    )
}


@pytest.mark.parametrize(
    "text",
    [
        "# the charge (spec 0.1)",
        "x = 1  # see spec section 3",
        "// spec's 4.3a",
        "written from the spec",
        "see reference_spec.md",
        "(../shared/spec/reference_spec.md)",
        "/work/shared/papers/x.pdf",
        "``shared/papers``",
        "# issue 16 item 6",
        "Issue 4's target",
        "the issue's targets",
        "fixes issue #12",
        "(user_pain item 5)",
    ],
)
def test_forbidden_citations_are_caught(text):
    assert forbidden_citations("ok line\n" + text), text


@pytest.mark.parametrize(
    "text",
    [
        "module_from_spec(spec)",
        "def resolve(spec: str)",
        "an issue number",
        "shared memory",
        "spec'd",
        "inspect 3",
    ],
)
def test_ordinary_words_pass(text):
    assert not forbidden_citations(text), text


@pytest.mark.parametrize(
    "text, expected",
    [
        ('# docs/neuron.md "Charge, fire, reset"', []),
        ('see `docs/neuron.md` "Charge, fire, reset".', []),
        ('# the rule (docs/neuron.md\n# "Charge, fire,\n# reset")', []),
        ('// docs/neuron.md "return_v_seq and more"', []),
        ("# the whole page: docs/neuron.md.", []),
        ('# docs/neuron.md "Charge and fire"', ['1: docs/neuron.md has no heading "Charge and fire"']),
        ('# docs/neuron.md "not a heading"', ['1: docs/neuron.md has no heading "not a heading"']),
        ("x\n# docs/nothing.md", ["2: no file docs/nothing.md"]),
        (
            '# docs/neuron.md, "Charge, fire, reset"',
            ['1: cite a section of docs/neuron.md as docs/neuron.md "<Heading>"'],
        ),
        (
            '# docs/neuron.md ("Charge, fire, reset")',
            ['1: cite a section of docs/neuron.md as docs/neuron.md "<Heading>"'],
        ),
        ('# `docs/neuron.md`, "Top"', ['1: cite a section of docs/neuron.md as docs/neuron.md "<Heading>"']),
        ("# out/docs/page.md is written, not cited", []),
    ],
)
def test_section_citations_are_checked(text, expected):
    assert bad_section_citations(text, SYNTHETIC_DOCS) == expected
