#!/usr/bin/env bash
# Clone the spiking transformers' official repositories, at the commits the tests were written against, into
# .official/ (ignored by git; or into $SNNKERNELS_OFFICIAL_DIR). python_tests/models/test_spiking_transformers.py
# compares the models of snnkernels.models with them when they are there, and skips that part otherwise.
# Nothing of them is copied into this repository. Needs git and network access.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${SNNKERNELS_OFFICIAL_DIR:-.official}"
mkdir -p "$dest"
while read -r name repo commit; do
    dir="$dest/$name"
    if [ ! -d "$dir/.git" ]; then
        git clone -q "https://github.com/$repo.git" "$dir"
    fi
    git -C "$dir" fetch -q origin "$commit" 2>/dev/null || true
    git -C "$dir" -c advice.detachedHead=false checkout -q "$commit"
    echo "ok: $dir ($repo @ ${commit:0:7})"
done <<'LIST'
spikformer ZK-Zhou/spikformer 621268981827af47aa666c1b5f774de4281d90ad
Spikingformer zhouchenlin2096/Spikingformer 4378623b82bb1999b137244950ad648566e148fd
Spike-Driven-Transformer BICLab/Spike-Driven-Transformer 3faa82272eb499e4d56ea77707d4536e7c69a54b
Spike-Driven-Transformer-V2 BICLab/Spike-Driven-Transformer-V2 35f245f4f79acf1a2b3ef22698c58ab05c1ede33
QKFormer zhouchenlin2096/QKFormer c2a00e8e54538e76f5954614a60c1d53824bbee9
LIST
