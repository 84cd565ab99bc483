#!/usr/bin/env bash
# The benchmarks (BENCHMARKS.md): the epoch, with the SciPy baseline; the
# Fisher job; a peer's learn step beside PyTorch. Builds in release, installs the SciPy
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

# The Fisher job (SPEC 5.3): 64 peers x 4 queried peers x batch 32, seq_len 32 x
# out_dim 64; FACEBLOCK_FISHER_BENCH="PEERS FANOUT BATCH" picks another size.
cargo bench -p faceblock-coordinator --bench fisher

# The peer's learn step: candle (release) beside the same model in PyTorch.
# PyTorch's CPU wheel comes from download.pytorch.org when it is reachable,
# else the PyPI wheel (which also runs on CPU) into its own virtualenv.
tvenv="$HOME/.cache/faceblock/torch-venv"
if ! "$tvenv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$tvenv"
  "$tvenv/bin/pip" install --quiet torch --index-url https://download.pytorch.org/whl/cpu \
    || "$tvenv/bin/pip" install --quiet torch
fi
text="$(mktemp -d)"
trap 'rm -rf "$text"' EXIT
cargo bench -p faceblock-worker --bench learn
cat worker/src/*.rs coordinator/src/*.rs > "$text/corpus.txt"   # content doesn't change the speed
"$tvenv/bin/python" pipelines/bench/learn_torch.py "$text/corpus.txt"
