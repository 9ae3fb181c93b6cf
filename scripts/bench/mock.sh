# Shared by the scripts/bench-*.sh harnesses that run `retort run` against a fresh
# `retort-mock` per run. Source it after setting MOCK (the mock binary) and BENCH_NAME
# (names the work directory); it creates WORK, removes it on exit (unless KEEP_TMP=1),
# stops a mock left running, and raises the open-files limit (up to C connections).
#
#   start_mock FLAGS LOGFILE   a fresh mock on a free port; sets PORT and MOCK_PID
#   stop_mock                  stops it (TERM, then KILL after 5 s)
#   chat_requests LOGFILE      chat requests the mock saw, from the line it prints on exit
#   wall_of TIMEFILE           seconds of a `/usr/bin/time -v` report

log() { printf '%s\n' "$*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
MOCK_PID=""

stop_mock() {
  [[ -n $MOCK_PID ]] || return 0
  kill "$MOCK_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$MOCK_PID" 2>/dev/null || true
  wait "$MOCK_PID" 2>/dev/null || true
  MOCK_PID=""
}

cleanup() {
  stop_mock
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_mock() {
  local flags=$1 logfile=$2
  PORT=$(free_port)
  # shellcheck disable=SC2086 # flags are words on purpose
  "$MOCK" --listen "127.0.0.1:$PORT" $flags >"$logfile" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 100); do
    if curl -sf --max-time 1 "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1; then return 0; fi
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "retort-mock did not come up on port $PORT:"
  cat "$logfile" >&2
  exit 1
}

chat_requests() {
  sed -n 's/^served [0-9]* requests (\([0-9]*\) chat.*/\1/p' "$1" | tail -n 1 | grep . || echo "?"
}

wall_of() {
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i]; printf "%.2f\n", w }' "$1"
}
