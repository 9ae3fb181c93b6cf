#!/usr/bin/env bash
# End-to-end teacher-engine benchmark through the binaries: `retort run` of a
# load -> respond -> export pipeline against `retort-mock`, side by side with the plain
# Python script a user would write instead (scripts/bench/engine_baseline.py:
# AsyncOpenAI + asyncio.gather + Semaphore(C)), same prompts, same concurrency, same
# per-request timeout, a fresh mock with the same flags for each.
#
# Usage: scripts/bench-engine.sh [SCENARIO ...]     (all scenarios by default)
#        scripts/bench-engine.sh --list
# Environment:
#   N_SCALE=0.05    multiply every scenario's N (and the outage trigger) by this
#   RUN_TIMEOUT=1800  seconds before one client run is killed (exit 124)
#   KEEP_TMP=1      keep the work directory (pipelines, run dirs, logs)
#   SKIP_BUILD=1    use the existing target/release binaries
#
# Prints a Markdown table on stdout, progress and details on stderr. Talks only to
# 127.0.0.1. See scripts/bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

N_SCALE=${N_SCALE:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
RETORT=$ROOT/target/release/retort
MOCK=$ROOT/target/release/retort-mock
VENV=$ROOT/target/bench-venv
BASELINE=$ROOT/scripts/bench/engine_baseline.py
DEFAULT_TIMEOUT=60 # timeout_secs of both clients unless the scenario sets one

BENCH_NAME=bench-engine
# shellcheck source=bench/mock.sh
source "$ROOT/scripts/bench/mock.sh"

# ---------------------------------------------------------------- scenarios
# name | mock flags | N | C | timeout_secs | mean latency in s (for the ideal; - if none)
SCENARIOS=(
  "0ms||2000|64|$DEFAULT_TIMEOUT|-"
  "0ms-20k||20000|256|$DEFAULT_TIMEOUT|-"
  "const500|--latency-ms 500|2000|64|$DEFAULT_TIMEOUT|0.5"
  "lognormal|--latency-mean-ms 500 --latency-sigma 1|2000|64|$DEFAULT_TIMEOUT|0.5"
  "lognormal-20k|--latency-mean-ms 500 --latency-sigma 1|20000|256|$DEFAULT_TIMEOUT|0.5"
  "lognormal-seed3|--latency-mean-ms 500 --latency-sigma 1 --seed 3|2000|64|$DEFAULT_TIMEOUT|0.5"
  "lognormal-seed11|--latency-mean-ms 500 --latency-sigma 1 --seed 11|2000|64|$DEFAULT_TIMEOUT|0.5"
  "lognormal+5%err|--latency-mean-ms 500 --latency-sigma 1 --rate-429 0.025 --rate-500 0.025 --retry-after-ms 1000|2000|64|$DEFAULT_TIMEOUT|0.5"
  "0ms+5%err|--rate-429 0.025 --rate-500 0.025 --retry-after-ms 1000|2000|64|$DEFAULT_TIMEOUT|-"
  "0ms+5%err-20k|--rate-429 0.025 --rate-500 0.025 --retry-after-ms 1000|20000|256|$DEFAULT_TIMEOUT|-"
  "0ms+20%err|--rate-429 0.1 --rate-500 0.1 --retry-after-ms 1000|2000|64|$DEFAULT_TIMEOUT|-"
  "hang5%|--rate-hang 0.05 --hang-ms 60000|2000|64|2|-"
  "outage|--outage-after-requests @8000 --outage-secs 30|20000|256|$DEFAULT_TIMEOUT|-"
  "bad-prompt20%|--rate-bad-prompt 0.2|2000|64|$DEFAULT_TIMEOUT|-"
)

scenario_names() { for s in "${SCENARIOS[@]}"; do printf '%s\n' "${s%%|*}"; done; }

if [[ ${1:-} == --list ]]; then
  scenario_names
  exit 0
fi

# N (or an outage trigger) times N_SCALE, at least 1.
scale() { awk -v n="$1" -v s="$N_SCALE" 'BEGIN { v = int(n * s + 0.5); if (v < 1) v = 1; print v }'; }

SELECTED=("$@")
if [[ ${#SELECTED[@]} -eq 0 ]]; then
  mapfile -t SELECTED < <(scenario_names)
fi
for want in "${SELECTED[@]}"; do
  scenario_names | grep -qxF -- "$want" || { log "unknown scenario '$want'; try --list"; exit 2; }
done

# ---------------------------------------------------------------- setup
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building target/release/retort and retort-mock ..."
  cargo build --release -q -p retort -p retort-mock >&2
  cargo build --release -q -p retort-mock --example schedule >&2
fi
[[ -x $RETORT && -x $MOCK ]] || { log "missing $RETORT or $MOCK"; exit 1; }

if ! "$VENV/bin/python" -c 'import openai' 2>/dev/null; then
  log "creating $VENV with openai ..."
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q openai >&2
fi
OPENAI_VERSION=$("$VENV/bin/python" -c 'import openai; print(openai.__version__)')

# gen_prompts N FILE
gen_prompts() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(json.dumps({
            "id": f"p{i}",
            "instruction": f"Question number {i}: explain topic {i % 97} to a curious beginner "
                           f"in one short paragraph, with one concrete example.",
        }) + "\n")
EOF
}

# time_field FILE: "wall_s rss_mb" from a /usr/bin/time -v report.
time_fields() {
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i] }
    /Maximum resident set size/ { r = $2 / 1024 }
    END { printf "%.2f %.0f\n", w, r }' "$1"
}

# retort_counts RUNDIR: "rows failures classes" from the export and failures.parquet.
retort_counts() {
  python3 - "$1" <<'EOF'
import collections, os, sys
import pyarrow.parquet as pq
run = sys.argv[1]
out = os.path.join(run, "sft.parquet")
rows = pq.read_metadata(out).num_rows if os.path.exists(out) else "-"
fp = os.path.join(run, "failures.parquet")
if os.path.exists(fp):
    t = pq.read_table(fp, columns=["class"])
    c = collections.Counter(t.column("class").to_pylist())
    fails, classes = t.num_rows, ",".join(f"{k}={v}" for k, v in sorted(c.items())) or "none"
else:
    fails, classes = "-", "no_failures_file"
print(rows, fails, classes)
EOF
}

write_pipeline() { # DIR PORT C T PROMPTS
  cat >"$1/pipeline.toml" <<EOF
name = "bench-engine"
seed = 1

[teachers.mock]
provider = "openai"
base_url = "http://127.0.0.1:$2/v1"
model = "mock-model"
max_in_flight = $3
timeout_secs = $4

[[step]]
id = "seeds"
kind = "load"
path = "$5"

[[step]]
id = "answers"
kind = "respond"
after = "seeds"
teacher = "mock"
concurrency = $3
max_tokens = 64

[[step]]
id = "out"
kind = "export"
after = "answers"
format = "messages"
path = "sft.parquet"
EOF
}

# ---------------------------------------------------------------- run
log "N_SCALE=$N_SCALE, openai $OPENAI_VERSION, $(nproc) cores, work dir $WORK"
ROWS=()
DETAILS=()
for s in "${SCENARIOS[@]}"; do
  IFS='|' read -r name flags n c t mean <<<"$s"
  printf '%s\n' "${SELECTED[@]}" | grep -qxF -- "$name" || continue
  n=$(scale "$n")
  # `@K` in the flags is a request count that scales like N.
  if [[ $flags == *@* ]]; then
    k=${flags#*@}
    k=${k%% *}
    flags=${flags/@$k/$(scale "$k")}
  fi
  dir=$WORK/$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.-' '_')
  mkdir -p "$dir"
  prompts=$WORK/prompts-$n.jsonl
  [[ -f $prompts ]] || gen_prompts "$n" "$prompts"
  log "== $name: N=$n C=$c timeout=${t}s mock flags: ${flags:-none}"

  # retort
  start_mock "$flags" "$dir/mock-retort.log"
  write_pipeline "$dir" "$PORT" "$c" "$t" "$prompts"
  rc=0
  /usr/bin/time -v -o "$dir/retort.time" timeout -k 10 "$RUN_TIMEOUT" \
    "$RETORT" run "$dir/pipeline.toml" --out "$dir/run" --fresh -q \
    >"$dir/retort.out" 2>"$dir/retort.err" || rc=$?
  stop_mock
  read -r r_wall r_rss < <(time_fields "$dir/retort.time")
  read -r r_rows r_fails r_classes < <(retort_counts "$dir/run")
  r_sent=$(chat_requests "$dir/mock-retort.log")
  log "   retort: ${r_wall}s, rows $r_rows, failures $r_fails ($r_classes), exit $rc, peak RSS ${r_rss} MB, $r_sent chat requests sent"
  if [[ $rc -ne 0 ]]; then
    log "   retort stderr (last lines):"
    tail -n 5 "$dir/retort.err" | sed 's/^/     /' >&2
  fi

  # the user script
  start_mock "$flags" "$dir/mock-script.log"
  src=0
  /usr/bin/time -v -o "$dir/script.time" timeout -k 10 "$RUN_TIMEOUT" \
    "$VENV/bin/python" "$BASELINE" --base-url "http://127.0.0.1:$PORT/v1" --prompts "$prompts" \
    --concurrency "$c" --timeout "$t" --max-tokens 64 --out "$dir/script-answers.jsonl" \
    >"$dir/script.out" 2>"$dir/script.err" || src=$?
  stop_mock
  read -r p_wall p_rss < <(time_fields "$dir/script.time")
  p_res=$(tail -n 1 "$dir/script.out" 2>/dev/null || true)
  read -r p_ok p_err p_kinds < <(python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[1])
    k = ",".join(f"{a}={b}" for a, b in sorted(r["error_kinds"].items())) or "none"
    print(r["ok"], r["errors"], k)
except Exception:
    print("-", "-", "no_result")
' "$p_res")
  p_sent=$(chat_requests "$dir/mock-script.log")
  log "   script: ${p_wall}s, ok $p_ok, errors $p_err ($p_kinds), exit $src, peak RSS ${p_rss} MB, $p_sent chat requests sent"
  if [[ $src -ne 0 ]]; then
    tail -n 5 "$dir/script.err" | sed 's/^/     /' >&2
  fi

  ideal="-"
  if [[ $mean != - ]]; then ideal=$(awk -v n="$n" -v m="$mean" -v c="$c" 'BEGIN { printf "%.1f s", n * m / c }'); fi
  # For lognormal latency: the best wall any client can reach on the mock's own draws
  # (one very long draw can dominate; see crates/retort-mock/examples/schedule.rs).
  if [[ $flags == *--latency-mean-ms* ]]; then
    lm=$(sed -E 's/.*--latency-mean-ms ([0-9.]+).*/\1/' <<<"$flags")
    ls=$(sed -E 's/.*--latency-sigma ([0-9.]+).*/\1/' <<<"$flags")
    sd=7; [[ $flags == *--seed* ]] && sd=$(sed -E 's/.*--seed ([0-9]+).*/\1/' <<<"$flags")
    best=$("$ROOT/target/release/examples/schedule" "$n" "$c" "$lm" "$ls" "$sd" | sed -E 's/.*best possible wall ([0-9.]+ s).*/\1/')
    ideal="$ideal (best possible $best)"
  fi
  script_exit=""
  [[ $src -ne 0 ]] && script_exit=" (exit $src)"
  ROWS+=("| $name | $n | $c | ${r_wall} s | $r_rows / $r_fails / $rc | ${r_rss} MB | ${p_wall} s$script_exit | $p_ok / $p_err | $ideal |")
  DETAILS+=("- $name: retort failures: $r_classes, $r_sent requests; script errors: $p_kinds, $p_sent requests")
done

echo "| scenario | N | C | retort wall | retort rows / failures / exit | retort peak RSS | script wall | script ok / errors | ideal |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Walls are whole processes (/usr/bin/time). Script: openai $OPENAI_VERSION, default client settings. $(nproc) cores, N_SCALE=$N_SCALE."
echo "Requests = chat requests the mock received (retries included)."

printf '%s\n' "${DETAILS[@]}"
