#!/usr/bin/env bash
# The main job of the README: set up .venv, check every kernel against the eager reference and benchmark
# it on whatever device is present (CUDA GPU, or the CPU), writing bench/results/<date>_<device>.{csv,json,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m bench.run --device auto "$@"
