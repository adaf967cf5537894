#!/usr/bin/env bash
# The documentation site, offline: the API reference from the docstrings (pdoc) in $OUT/api and the
# hand-written pages of docs/ (the math of each op, the networks) in $OUT/docs, linked from $OUT/index.html.
# Usage: bash scripts/build_docs.sh [OUT]   (OUT defaults to site/, which git ignores)
# The Python is $PYTHON, else .venv's when there is one, else python3 on PATH; it needs torch and pdoc
# (pip install pdoc). snnkernels is documented from this checkout, installed or not.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-site}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import pdoc, markdown2" 2>/dev/null; then
    echo "build_docs.sh: $PYTHON cannot import pdoc (pip install pdoc), or set PYTHON to one that can" >&2
    exit 1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# pdoc follows the package's __all__
"$PYTHON" -m pdoc snnkernels -o "$OUT/api" --docformat google
"$PYTHON" scripts/docs_pages.py docs "$OUT"
echo "documentation in $OUT/index.html (API reference: $OUT/api/index.html)"
