#!/usr/bin/env bash
# Identify's p99 alone and during a login storm, for four placements of Passport's
# threads (src/scheduling.rs), each on a fresh server (embedded store):
#   default         hashing under SCHED_IDLE, request workers pinned one per CPU
#   unpinned        hashing under SCHED_IDLE, PASSPORT_PIN_WORKERS=false
#   nice19-pinned   hashing put back to SCHED_OTHER at nice 19, workers pinned
#   nice19-unpinned the same, unpinned: how Passport ran before
# Each round measures GET /passport/me (64 connections) alone, then beside 32
# connections logging in, as bench/run.sh does.
# Usage: bench/storm.sh [seconds per run, default 8] [rounds, default 2]
# Leaving SCHED_IDLE needs root (or CAP_SYS_NICE); without it the nice19 rows are
# skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-8}"
ROUNDS="${2:-2}"
WORK=$(mktemp -d)
PIDS=()
STORM_PID=""
cleanup() { for p in $STORM_PID "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
. bench/common.sh

ensure_wrk
cargo build --release --quiet --bin passport

# The hashing threads of process $1 back to SCHED_OTHER at nice 19.
hashing_at_nice19() {
  local task
  for task in /proc/"$1"/task/*; do
    if grep -q '^password-hash' "$task/comm"; then
      chrt --other -p 0 "${task##*/}" >/dev/null
      renice -n 19 -p "${task##*/}" >/dev/null
    fi
  done
}

me_p99() { me_load "$DUR" | awk '{print $3}'; }

printf '%-16s %-6s %-12s %-12s %s\n' placement round "p99 alone" "p99 storm" ratio
PLACEMENTS=(default unpinned nice19-pinned nice19-unpinned)
if [ "$(id -u)" != 0 ]; then
  echo "bench: not root, so the hashing threads cannot leave SCHED_IDLE: nice19 rows skipped" >&2
  PLACEMENTS=(default unpinned)
fi
for placement in "${PLACEMENTS[@]}"; do
  case $placement in *unpinned) pin=false ;; *) pin=true ;; esac
  start "$placement" PASSPORT_PIN_WORKERS=$pin
  case $placement in nice19-*) hashing_at_nice19 "$PID" ;; esac
  BASE="http://$ADDR"
  make_users "$BASE"
  TOKEN=$(probe_token "$BASE")
  login_script "$BENCH_PASSWORD"
  me_load 2 >/dev/null
  for round in $(seq "$ROUNDS"); do
    alone=$(me_p99)
    storm_in_background $((DUR + 60))
    sleep 2
    storm=$(me_p99)
    kill "$STORM_PID"; wait "$STORM_PID" 2>/dev/null || true
    STORM_PID=""
    printf '%-16s %-6s %-12s %-12s %.2fx\n' "$placement" "$round" "$alone ms" "$storm ms" "$(echo "$storm / $alone" | bc -l)"
    sleep 1
  done
  stop
done
