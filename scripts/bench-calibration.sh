#!/usr/bin/env bash
# What judge calibration costs a real run (issue 16 target: <= 5% of the wall of a run
# that scores >= 2,000 records), end to end: `retort run` of load -> score -> export over
# the same N instruction/answer records against a fresh `retort-mock` with the same
# flags (lognormal latency by default, so every run sees the same per-request delays),
# the score step's judge in structured mode (the mock answers schema-valid scores):
#
#   off    calibration = "off"
#   auto   the default: the built-in set (210 calls for the quality rubric) goes out
#          beside the run's own calls once the step has started 400 calls' worth
#   gated  calibration = "on" with min_calibration_accuracy = 0.3: the records wait for
#          the result (the mock's scores are arbitrary, so the gate is set to pass)
#
# Reports each run's wall (whole process), rows, failures, calibration calls, chat
# requests and the difference to `off`.
#
# Usage: scripts/bench-calibration.sh
# Environment:
#   N=2000            records
#   C=64              calls in flight (teacher max_in_flight and step concurrency)
#   ASPECTS='"quality"'  the score step's aspects (e.g. '"quality", "difficulty"')
#   MOCK_FLAGS="--latency-mean-ms 500 --latency-sigma 1"   retort-mock flags of every run ("" = 0 ms)
#   RUN_TIMEOUT=1800  seconds before one run is killed (exit 124)
#   KEEP_TMP=1        keep the work directory
#   SKIP_BUILD=1      use the existing target/release binaries
# Prints a Markdown table on stdout, progress on stderr. Talks only to 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

N=${N:-2000}
C=${C:-64}
ASPECTS=${ASPECTS:-'"quality"'}
MOCK_FLAGS=${MOCK_FLAGS---latency-mean-ms 500 --latency-sigma 1}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
RETORT=${RETORT:-$ROOT/target/release/retort}
MOCK=${MOCK:-$ROOT/target/release/retort-mock}

BENCH_NAME=bench-calibration
# shellcheck source=bench/mock.sh
source "$ROOT/scripts/bench/mock.sh"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building target/release/retort and retort-mock ..."
  cargo build --release -q -p retort -p retort-mock >&2
fi
[[ -x $RETORT && -x $MOCK ]] || { log "missing $RETORT or $MOCK"; exit 1; }

python3 - "$N" "$WORK/rows.jsonl" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(json.dumps({
            "id": f"r{i}",
            "instruction": f"Explain topic number {i % 97}, variant {i}.",
            "output": f"Topic {i % 97} (variant {i}) is explained in three sentences here.",
        }) + "\n")
PY

write_pipeline() { # VARIANT DIR PORT
  local calibration
  case $1 in
    off) calibration='calibration = "off"' ;;
    auto) calibration='calibration = "auto"' ;;
    gated) calibration='calibration = "on"
min_calibration_accuracy = 0.3' ;;
  esac
  cat >"$2/pipeline.toml" <<TOML
name = "bench-calibration-$1"
seed = 1

[teachers.mock]
provider = "openai"
base_url = "http://127.0.0.1:$3/v1"
model = "mock-model"
max_in_flight = $C
timeout_secs = 60

[[step]]
id = "rows"
kind = "load"
path = "$WORK/rows.jsonl"

[[step]]
id = "scored"
kind = "score"
after = ["rows"]
teacher = "mock"
aspects = [$ASPECTS]
structured = true
heuristics = false
concurrency = $C
$calibration

[[step]]
id = "out"
kind = "export"
after = ["scored"]
format = "alpaca"
path = "out.parquet"
TOML
}

counts() { # RUNDIR -> "rows failures calibration_calls"
  python3 - "$1" <<'PY'
import json, os, sys
import pyarrow.parquet as pq
run = sys.argv[1]
out = os.path.join(run, "out.parquet")
rows = pq.read_metadata(out).num_rows if os.path.exists(out) else "-"
fp = os.path.join(run, "failures.parquet")
fails = pq.read_metadata(fp).num_rows if os.path.exists(fp) else 0
m = json.load(open(os.path.join(run, "manifest.json")))
step = next(s for s in m["steps"] if s["id"] == "scored")
print(rows, fails, int(step["metrics"].get("calibration_calls", 0)))
PY
}

VARIANTS=(off auto gated)
log "N=$N C=$C aspects [$ASPECTS] mock flags: $MOCK_FLAGS, $(nproc) cores, work dir $WORK"
declare -A WALL ROWS FAILS CAL REQS EXIT
for v in "${VARIANTS[@]}"; do
  dir=$WORK/$v
  mkdir -p "$dir"
  start_mock "$MOCK_FLAGS" "$dir/mock.log"
  write_pipeline "$v" "$dir" "$PORT"
  rc=0
  /usr/bin/time -v -o "$dir/time" timeout -k 10 "$RUN_TIMEOUT" \
    "$RETORT" run "$dir/pipeline.toml" --out "$dir/run" --fresh --no-cache -q \
    >"$dir/retort.out" 2>"$dir/retort.err" || rc=$?
  stop_mock
  WALL[$v]=$(wall_of "$dir/time")
  read -r ROWS[$v] FAILS[$v] CAL[$v] < <(counts "$dir/run")
  REQS[$v]=$(chat_requests "$dir/mock.log")
  EXIT[$v]=$rc
  log "== $v: ${WALL[$v]}s, rows ${ROWS[$v]}, failures ${FAILS[$v]}, calibration calls ${CAL[$v]}, exit $rc, ${REQS[$v]} chat requests"
  if [[ $rc -ne 0 ]]; then tail -n 5 "$dir/retort.err" | sed 's/^/     /' >&2; fi
done

echo "| calibration | N | C | wall | vs off | rows / failures / exit | calibration calls | chat requests |"
echo "|---|---|---|---|---|---|---|---|"
for v in "${VARIANTS[@]}"; do
  diff=$(awk -v a="${WALL[$v]}" -v b="${WALL[off]}" 'BEGIN { printf "%+.1f%%", (b > 0 ? (a / b - 1) * 100 : 0) }')
  echo "| $v | $N | $C | ${WALL[$v]} s | $diff | ${ROWS[$v]} / ${FAILS[$v]} / ${EXIT[$v]} | ${CAL[$v]} | ${REQS[$v]} |"
done
echo
echo "(aspects [$ASPECTS]; mock flags: $MOCK_FLAGS; $(nproc) cores; walls are whole processes, /usr/bin/time)"
