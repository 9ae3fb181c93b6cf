#!/usr/bin/env bash
# Structured-vs-plain benchmark through an OpenAI-compatible server, end to end:
# `retort run` of load -> generate -> export over the same N prompts twice against a
# fresh `retort-mock` with the same flags (lognormal latency by default, so both runs
# see the same per-request delays):
#
#   json   `generate` with `output = "json"` and a 3-field object schema: the request
#          carries `response_format = {type: "json_schema", ...}`, the mock answers with a
#          schema-valid instance, retort validates every reply and maps its fields;
#   plain  `generate` with `output = "text"`, the same prompt and max_tokens.
#
# It reports each run's wall time (the whole `retort run` process), rows, failures, the
# chat requests the mock saw, and the json/plain wall ratio. Target (issue 15):
# structured calls cost the same throughput as plain ones (ratio ~1.0).
#
# Usage: scripts/bench-structured.sh
# Environment:
#   N=2000            prompts
#   C=64              calls in flight (teacher max_in_flight and step concurrency)
#   MOCK_FLAGS="--latency-mean-ms 500 --latency-sigma 1"   retort-mock flags of both runs ("" = 0 ms)
#   RUN_TIMEOUT=1800  seconds before one run is killed (exit 124)
#   KEEP_TMP=1        keep the work directory
#   SKIP_BUILD=1      use the existing target/release binaries
#   RETORT=… MOCK=…   other binaries (with SKIP_BUILD=1)
# Prints a Markdown table on stdout, progress on stderr. Talks only to 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

N=${N:-2000}
C=${C:-64}
MOCK_FLAGS=${MOCK_FLAGS---latency-mean-ms 500 --latency-sigma 1}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
RETORT=${RETORT:-$ROOT/target/release/retort}
MOCK=${MOCK:-$ROOT/target/release/retort-mock}

BENCH_NAME=bench-structured
# shellcheck source=bench/mock.sh
source "$ROOT/scripts/bench/mock.sh"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building target/release/retort and retort-mock ..."
  cargo build --release -q -p retort -p retort-mock >&2
fi
[[ -x $RETORT && -x $MOCK ]] || { log "missing $RETORT or $MOCK"; exit 1; }

python3 - "$N" "$WORK/prompts.jsonl" <<'EOF'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(json.dumps({"id": f"p{i}", "topic": f"topic number {i % 97}, variant {i}"}) + "\n")
EOF

write_pipeline() { # KIND(json|plain) DIR PORT
  local output_block
  if [[ $1 == json ]]; then
    output_block='output = "json"
fields = { question = "instruction", solution = "output", difficulty = "scores.difficulty" }

[step.schema]
type = "object"
required = ["difficulty", "question", "solution"]
additionalProperties = false
properties = { difficulty = { type = "integer", minimum = 1, maximum = 5 }, question = { type = "string" }, solution = { type = "string" } }'
  else
    output_block='output = "text"'
  fi
  cat >"$2/pipeline.toml" <<EOF
name = "bench-structured-$1"
seed = 1

[teachers.mock]
provider = "openai"
base_url = "http://127.0.0.1:$3/v1"
model = "mock-model"
max_in_flight = $C
timeout_secs = 60

[[step]]
id = "topics"
kind = "load"
path = "$WORK/prompts.jsonl"

[[step]]
id = "qa"
kind = "generate"
after = ["topics"]
teacher = "mock"
prompt = "Write one exam question about {{ instruction }}, its solution and its difficulty from 1 to 5, as a JSON object with keys difficulty, question, solution."
max_tokens = 256
concurrency = $C
$output_block

[[step]]
id = "out"
kind = "export"
after = ["qa"]
format = "alpaca"
path = "out.parquet"
EOF
}

counts() { # RUNDIR -> "rows failures"
  python3 - "$1" <<'EOF'
import os, sys
import pyarrow.parquet as pq
run = sys.argv[1]
out = os.path.join(run, "out.parquet")
rows = pq.read_metadata(out).num_rows if os.path.exists(out) else "-"
fp = os.path.join(run, "failures.parquet")
fails = pq.read_metadata(fp).num_rows if os.path.exists(fp) else 0
print(rows, fails)
EOF
}

log "N=$N C=$C mock flags: $MOCK_FLAGS, $(nproc) cores, work dir $WORK"
declare -A WALL ROWS FAILS REQS EXIT
for kind in json plain; do
  dir=$WORK/$kind
  mkdir -p "$dir"
  start_mock "$MOCK_FLAGS" "$dir/mock.log"
  write_pipeline "$kind" "$dir" "$PORT"
  rc=0
  /usr/bin/time -v -o "$dir/time" timeout -k 10 "$RUN_TIMEOUT" \
    "$RETORT" run "$dir/pipeline.toml" --out "$dir/run" --fresh --no-cache -q \
    >"$dir/retort.out" 2>"$dir/retort.err" || rc=$?
  stop_mock
  WALL[$kind]=$(wall_of "$dir/time")
  read -r ROWS[$kind] FAILS[$kind] < <(counts "$dir/run")
  REQS[$kind]=$(chat_requests "$dir/mock.log")
  EXIT[$kind]=$rc
  log "== $kind: ${WALL[$kind]}s, rows ${ROWS[$kind]}, failures ${FAILS[$kind]}, exit $rc, ${REQS[$kind]} chat requests"
  if [[ $rc -ne 0 ]]; then tail -n 5 "$dir/retort.err" | sed 's/^/     /' >&2; fi
done

echo "| run | N | C | wall | rows / failures / exit | chat requests |"
echo "|---|---|---|---|---|---|"
for kind in json plain; do
  echo "| $kind | $N | $C | ${WALL[$kind]} s | ${ROWS[$kind]} / ${FAILS[$kind]} / ${EXIT[$kind]} | ${REQS[$kind]} |"
done
echo
echo "json / plain wall: $(awk -v a="${WALL[json]}" -v b="${WALL[plain]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
  "(mock flags: $MOCK_FLAGS; $(nproc) cores; walls are whole processes, /usr/bin/time)"
