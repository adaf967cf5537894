#!/usr/bin/env bash
# The main job of the README: set up .venv, check every kernel against the eager reference and benchmark
# it on whatever device is present (CUDA GPU, or the CPU): the neurons (bench.run) and the pooled
# attentions (bench.attention), writing bench/results/<date>_<device>[_attention].{csv,json,png}.
# Extra arguments go to bench.run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
status=0
.venv/bin/python -m bench.run --device auto "$@" || status=$?
.venv/bin/python -m bench.attention --device auto || status=$?
exit $status
