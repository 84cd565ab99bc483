#!/usr/bin/env bash
# The epoch benchmark (BENCHMARKS.md): builds in release, installs the SciPy
# baseline's Python packages into ~/.cache/faceblock/venv, runs both.
#
#   pipelines/bench.sh [N K]...      default: 10000 64 100000 256
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/faceblock/target}"
venv="$HOME/.cache/faceblock/venv"
if ! "$venv/bin/python" -c "import numpy, scipy, pyarrow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy scipy pyarrow
fi
export FACEBLOCK_BENCH_PYTHON="$venv/bin/python"
cargo bench -p faceblock-coordinator --bench epoch -- "$@"
