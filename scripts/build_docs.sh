#!/usr/bin/env bash
# API reference from the docstrings (pdoc, offline): writes HTML to ${1:-site/api} (git-ignored).
# The hand-written pages (the math of each op) are docs/*.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-site/api}
.venv/bin/python -m pdoc snnkernels -o "$OUT" --docformat google
echo "API reference in $OUT/index.html"
