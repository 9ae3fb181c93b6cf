#!/usr/bin/env bash
# Grammar benchmark of the embedded teacher, end to end through `retort run`: the same N
# prompts (default 50, the first N self-chat topics of seeds/topics.jsonl) answered twice
# by the same local model, with the same prompt, seed, temperature and max_tokens:
#
#   json  `generate` with `output = "json"` and a 3-field object schema
#         ({difficulty: integer 1-5, question: string, solution: string}), so llama.cpp
#         samples under the grammar derived from the schema and retort validates each reply;
#   text  `generate` with `output = "text"`: no grammar; the replies are parsed and
#         validated afterwards against the same schema (with Python's jsonschema when it
#         is installed), to show what the grammar changes.
#
# For each it reports valid/total (json: records written / prompts, every other reply is
# a failure row; text: replies that parse and validate), the step's completion tokens
# (manifest.json token accounting), the step's wall time (manifest `seconds`, model load
# included) and completion tokens/s; then the json/text tokens/s ratio. Target (issue
# 15): 100% valid for json at >= 80% of the text tokens/s.
#
# Usage: scripts/bench-grammar.sh [--set KEY=VALUE ...]
#   e.g. scripts/bench-grammar.sh --set teachers.local.model=smollm2
# Environment:
#   N=50              prompts
#   MODEL=qwen2.5-coder-0.5b-instruct   the local teacher (structured.toml's teacher)
#   MAX_TOKENS=1536   per reply, both runs (as pipelines/structured.toml)
#   PARALLEL=4        sequences decoded together (teacher `parallel`, step concurrency)
#   KEEP_TMP=1        keep the work directory
#   SKIP_BUILD=1      use the existing target/release/retort
#   RETORT=…          another binary (with SKIP_BUILD=1)
# Needs the model in the models directory (`retort models fetch`, or `--only smollm2`).
# Prints a Markdown table on stdout, progress on stderr. No network.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

N=${N:-50}
MODEL=${MODEL:-qwen2.5-coder-0.5b-instruct}
MAX_TOKENS=${MAX_TOKENS:-1536}
PARALLEL=${PARALLEL:-4}
RETORT=${RETORT:-$ROOT/target/release/retort}
SETS=("$@")
for s in "${SETS[@]}"; do
  [[ $s == --set || $s == *=* ]] || { echo "usage: $0 [--set KEY=VALUE ...]" >&2; exit 2; }
done

log() { printf '%s\n' "$*" >&2; }

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building target/release/retort ..."
  cargo build --release -q -p retort >&2
fi
[[ -x $RETORT ]] || { log "missing $RETORT"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-grammar.XXXXXX")
cleanup() {
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

head -n "$N" seeds/topics.jsonl >"$WORK/prompts.jsonl"
[[ $(wc -l <"$WORK/prompts.jsonl") -eq $N ]] || { log "seeds/topics.jsonl has fewer than $N rows"; exit 2; }

# The same prompt as pipelines/structured.toml; the schema is only in the json pipeline.
write_pipeline() { # KIND(json|text) FILE
  local output_block
  if [[ $1 == json ]]; then
    output_block='output = "json"
fields = { question = "instruction", solution = "output", difficulty = "scores.difficulty" }

[step.schema]
type = "object"
required = ["difficulty", "question", "solution"]
additionalProperties = false

[step.schema.properties.difficulty]
type = "integer"
minimum = 1
maximum = 5

[step.schema.properties.question]
type = "string"
minLength = 10
maxLength = 200

[step.schema.properties.solution]
type = "string"
minLength = 1
maxLength = 500'
  else
    output_block='output = "text"
allow_truncated = true   # count every reply; a cut one simply fails validation below'
  fi
  cat >"$2" <<EOF
name = "bench-grammar-$1"
seed = 7

[teachers.local]
provider = "local"
model = "$MODEL"
parallel = $PARALLEL
max_in_flight = $PARALLEL

[[step]]
id = "topics"
kind = "load"
path = "$WORK/prompts.jsonl"

[[step]]
id = "qa"
kind = "generate"
after = ["topics"]
teacher = "local"
system = "You write short exam questions with their solutions. You reply with one JSON object and nothing else."
prompt = """Topic ({{ labels.category }}): {{ instruction }}

Write one exam question about this topic and its solution. Reply with a JSON object with these keys, in this order:
- "difficulty": how hard the question is, an integer from 1 (easy) to 5 (hard)
- "question": the question, one or two sentences
- "solution": a correct solution, at most four sentences"""
temperature = 0.7
max_tokens = $MAX_TOKENS
concurrency = $PARALLEL
$output_block

[[step]]
id = "out"
kind = "export"
after = ["qa"]
format = "records"
path = "out.parquet"
EOF
}

# Prints "valid total completion_tokens seconds" for a finished run directory.
summarise() { # KIND RUNDIR
  python3 - "$1" "$2" "$N" <<'EOF'
import collections, json, os, re, sys
import pyarrow.parquet as pq
kind, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = json.load(open(os.path.join(run, "manifest.json")))
step = next(s for s in m["steps"] if s["id"] == "qa")
acct = [v for v in m["teachers"]["steps"] if v["step"] == "qa"]
if len(acct) != 1:
    sys.exit(f"cannot find the token accounting of step qa in {run}/manifest.json")
a = acct[0]
if a.get("cache_hits", 0):
    sys.exit(f"{a['cache_hits']} cache hits in {run}: the timing would not be of generation")
rows = pq.read_table(os.path.join(run, "out.parquet")).to_pylist()
if kind == "json":
    valid = len(rows)  # retort wrote only replies that parsed and validated
else:
    try:
        import jsonschema
    except ImportError:
        sys.exit("validating the text replies needs Python's jsonschema: pip install jsonschema")
    import tomllib  # the schema the json run used, from its pipeline file
    with open(os.path.join(os.path.dirname(run), "..", "json", "pipeline.toml"), "rb") as f:
        schema = next(st for st in tomllib.load(f)["step"] if st["id"] == "qa")["schema"]
    valid = 0
    for r in rows:
        text = (r["output"] or "").strip()
        # The same forgiveness as retort's own parse: one Markdown code fence.
        f = re.fullmatch(r"```[A-Za-z0-9_-]*\s*\n(.*)\n\s*```", text, re.S)
        if f:
            text = f.group(1).strip()
        try:
            v = json.loads(text)
        except ValueError:
            continue
        valid += jsonschema.Draft202012Validator(schema).is_valid(v)
fp = os.path.join(run, "failures.parquet")
classes = collections.Counter(pq.read_table(fp).column("class").to_pylist()) if os.path.exists(fp) else {}
print(valid, n, a["completion_tokens"], f"{step['seconds']:.1f}", ",".join(f"{k}={v}" for k, v in sorted(classes.items())) or "none")
EOF
}

log "model $MODEL, N=$N, max_tokens $MAX_TOKENS, parallel $PARALLEL, $(nproc) cores, work dir $WORK"
declare -A VALID TOKENS SECS FAILS
for kind in json text; do
  dir=$WORK/$kind
  mkdir -p "$dir"
  write_pipeline "$kind" "$dir/pipeline.toml"
  log "== $kind"
  rc=0
  "$RETORT" run "$dir/pipeline.toml" --out "$dir/run" --fresh --no-cache -q "${SETS[@]}" \
    >"$dir/retort.out" 2>"$dir/retort.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    log "   retort run failed (exit $rc):"
    tail -n 20 "$dir/retort.err" >&2
    exit 1
  fi
  read -r valid total tokens secs classes < <(summarise "$kind" "$dir/run")
  VALID[$kind]=$valid TOKENS[$kind]=$tokens SECS[$kind]=$secs FAILS[$kind]=$classes
  log "   valid $valid / $total, $tokens completion tokens in ${secs}s, failures: $classes"
done

tps() { awk -v t="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? t / s : 0) }'; }
J=$(tps "${TOKENS[json]}" "${SECS[json]}")
T=$(tps "${TOKENS[text]}" "${SECS[text]}")
echo "| run | valid / total | failure rows | completion tokens | step wall | completion tokens/s |"
echo "|---|---|---|---|---|---|"
echo "| json (schema grammar) | ${VALID[json]} / $N | ${FAILS[json]} | ${TOKENS[json]} | ${SECS[json]} s | $J |"
echo "| text (no grammar) | ${VALID[text]} / $N | ${FAILS[text]} | ${TOKENS[text]} | ${SECS[text]} s | $T |"
echo
echo "json / text tokens/s: $(awk -v a="$J" -v b="$T" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
  "(model $MODEL, N=$N, max_tokens $MAX_TOKENS, parallel $PARALLEL, $(nproc) cores${SETS[*]:+, ${SETS[*]}})"
