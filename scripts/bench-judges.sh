#!/usr/bin/env bash
# Which embedded model should be the default teacher and judge (issue 16)? For each
# embedded model: its calibration as a judge on the shipped set (pipelines/calibrate.toml:
# the score step's quality rubric and a pairwise judge), and the quickstart run with it
# as teacher and judge (wall time on this machine, parse failures, answers in another
# language than their instruction). Prints one Markdown table for docs/benchmarks.md.
#
#   retort models fetch && scripts/bench-judges.sh
#   MODELS="qwen2.5-coder-0.5b-instruct" scripts/bench-judges.sh
#
# Needs a release build (cargo build --release -p retort) and a quiet machine: the wall
# times are part of the result.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/retort}
MODELS=${MODELS:-"smollm2-135m-instruct qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct"}
OUT=${OUT:-runs/bench-judges}
# Extra arguments for the calibration run, e.g. CALIBRATE_ARGS="--set step.pairwise.calibration=off"
# to measure the score step's rubric only (half the calls).
CALIBRATE_ARGS=${CALIBRATE_ARGS:-}
mkdir -p "$OUT"

secs() { python3 -c "import time; print(time.time())"; }

for m in $MODELS; do
  echo "==> $m: calibration" >&2
  t0=$(secs)
  # shellcheck disable=SC2086
  "$BIN" --quiet run pipelines/calibrate.toml --set "teachers.judge.model=$m" $CALIBRATE_ARGS \
    --out "$OUT/calibrate-$m" --fresh >"$OUT/calibrate-$m.log" 2>&1
  t1=$(secs)
  echo "==> $m: quickstart" >&2
  "$BIN" --quiet run pipelines/quickstart.toml --set "teachers.local.model=$m" \
    --out "$OUT/quickstart-$m" --fresh >"$OUT/quickstart-$m.log" 2>&1
  t2=$(secs)
  python3 - "$m" "$OUT" "$t0" "$t1" "$t2" >>"$OUT/rows.md" <<'PY'
import json, sys
m, out, t0, t1, t2 = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
def steps(run):
    man = json.load(open(f"{out}/{run}-{m}/manifest.json"))
    return {s["id"]: s for s in man["steps"]}
c = steps("calibrate")
q = steps("quickstart")
pw, pr = c["pointwise"]["metrics"], c["pairwise"]["metrics"]
tasks, scored = q["tasks"], q["scored"]
mism = q["annotated"]["metrics"].get("lang_mismatch_rate")
flaws = sorted((k[len("calibration_flaw_"):], v) for k, v in pw.items() if k.startswith("calibration_flaw_"))
worst = ", ".join(f"{k} {v:.2f}" for k, v in sorted(flaws, key=lambda x: x[1])[:2])
pair = (f"{pr['calibration_accuracy']:.2f} (first position {pr.get('calibration_first_position', float('nan')):.2f})"
        if "calibration_accuracy" in pr else "not run")
print(f"| {m} | {pw['calibration_accuracy']:.2f} (en {pw.get('calibration_lang_en', 0):.2f}, zh {pw.get('calibration_lang_zh', 0):.2f}; unreadable {pw['calibration_unparsed']:.2f}; worst: {worst}) "
      f"| {pair} "
      f"| {t1 - t0:.0f} s "
      f"| {t2 - t1:.0f} s | {tasks['rows_out']} tasks, {tasks['failures']} failed | "
      f"{'—' if mism is None else f'{mism:.2f}'} | {scored['failures']} of {scored['rows_in']} | {q['sft']['rows_in']} |")
PY
done

echo "| model | pointwise calibration (score step) | pairwise calibration (judge step) | calibration wall | quickstart wall | quickstart generation | answers in another language | judge parse failures | rows in sft.parquet |"
echo "|---|---|---|---|---|---|---|---|---|"
cat "$OUT/rows.md"
rm -f "$OUT/rows.md"
