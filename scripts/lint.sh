#!/usr/bin/env bash
# Lint: `ruff check` (the rules in pyproject.toml's [tool.ruff.lint]) and `ruff format --check`, with the
# ruff pinned in requirements-dev.txt (.venv, made by scripts/setup_env.sh). scripts/test.sh runs this
# first, so CI fails on a lint finding. Fix with `.venv/bin/ruff check --fix .` / `.venv/bin/ruff format .`.
set -euo pipefail
cd "$(dirname "$0")/.."
RUFF=${RUFF:-.venv/bin/ruff}
status=0
"$RUFF" check . || status=1
"$RUFF" format --check . || status=1
exit "$status"
