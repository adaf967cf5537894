"""The hand-written pages of docs/ as HTML, and the site's index (scripts/build_docs.sh runs it).

Usage: python scripts/docs_pages.py DOCS_DIR OUT_DIR. Writes OUT_DIR/docs/<page>.html for every
DOCS_DIR/<page>.md and OUT_DIR/index.html, which links them and the API reference (OUT_DIR/api, pdoc's).
Offline: markdown2 is pdoc's own Markdown converter, so wherever pdoc runs this does too.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import markdown2

EXTRAS = ["tables", "fenced-code-blocks", "header-ids", "code-friendly", "cuddled-lists"]
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - snnkernels</title>
<style>
body {{ font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; }}
pre {{ background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }} code {{ background: #f6f6f6; }}
</style></head>
<body><nav><a href="{home}">snnkernels documentation</a> | <a href="{api}">API reference</a></nav>
{body}
</body></html>
"""


def title_of(markdown: str, fallback: str) -> str:
    match = re.search(r"^#\s+(.+)$", markdown, re.M)
    return match.group(1).strip().replace("`", "") if match else fallback


def link_pages(body: str, pages: set[str]) -> str:
    """Mentions of another page (`docs/neuron.md`) become links to it."""

    def link(match: re.Match) -> str:
        name = match.group(1)
        return f'<a href="{name}.html">{match.group(0)}</a>' if name in pages else match.group(0)

    return re.sub(r"<code>docs/([\w-]+)\.md</code>", link, body)


def build(docs: Path, out: Path) -> list[Path]:
    sources = sorted(docs.glob("*.md"))
    pages = {p.stem for p in sources}
    (out / "docs").mkdir(parents=True, exist_ok=True)
    written, entries = [], []
    for source in sources:
        text = source.read_text(encoding="utf-8")
        title = title_of(text, source.stem)
        body = link_pages(markdown2.markdown(text, extras=EXTRAS), pages)
        target = out / "docs" / f"{source.stem}.html"
        target.write_text(
            PAGE.format(title=html.escape(title), home="../index.html", api="../api/index.html", body=body),
            encoding="utf-8",
        )
        written.append(target)
        entries.append(
            f'<li><a href="docs/{source.stem}.html">{html.escape(title)}</a> (<code>docs/{source.name}</code>)</li>'
        )
    index = (
        '<h1>snnkernels documentation</h1>\n<p><a href="api/index.html">API reference</a> '
        "(from the docstrings)</p>\n<h2>Guides: the math of each op, the networks</h2>\n<ul>\n"
        + "\n".join(entries)
        + "\n</ul>"
    )
    (out / "index.html").write_text(
        PAGE.format(title="documentation", home="index.html", api="api/index.html", body=index), encoding="utf-8"
    )
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{len(build(Path(sys.argv[1]), Path(sys.argv[2])))} pages from {sys.argv[1]} in {sys.argv[2]}/docs")
