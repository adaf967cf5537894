#!/usr/bin/env bash
# The test command of the README (and of .ci/run): set up .venv, lint (scripts/lint.sh), then run the whole
# suite.
# Without a GPU the Triton kernels run on the CPU under Triton's interpreter (TRITON_INTERPRET=1);
# with one they run for real on CUDA. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/lint.sh
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    export TRITON_INTERPRET=1
fi
exec .venv/bin/python -m pytest python_tests "$@"
