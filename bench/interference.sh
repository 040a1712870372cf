#!/usr/bin/env bash
# What costs identify its tail during a login storm? Measures GET /passport/me
# (64 connections, embedded store) alone, then beside one kind of background work:
#   storm        32 connections logging in continuously (what bench/run.sh does)
#   storm-wrong  the same with a wrong password: Argon2 and counters, no session write
#   argon2       two Argon2id loops in another process at nice 19 (no HTTP, no SQL)
#   argon2-idle  the same under SCHED_IDLE
#   spin         two busy loops at nice 19 that touch no memory
# Usage: bench/interference.sh [seconds per run, default 8] [kind ...]
# Needs what bench/run.sh needs (bench/common.sh installs wrk if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-8}"
shift || true
KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || KINDS=(storm storm-wrong argon2 argon2-idle spin)
WORK=$(mktemp -d)
PIDS=()
BG=()
cleanup() { for p in "${BG[@]:-}" "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
. bench/common.sh

ensure_wrk
cargo build --release --quiet --bin passport --example hash_cost
start interference
BASE="http://$ADDR"
make_users "$BASE"
TOKEN=$(probe_token "$BASE")

# req/s, p50 and p99 of /me, and its errors (non-2xx answers, socket errors)
me() {
  local rps p50 p99 err
  read -r rps p50 p99 err < <(me_load "$DUR")
  printf '%8.0f req/s  p50 %5.2f ms  p99 %5.2f ms  errors %d\n' "$rps" "$p50" "$p99" "$err"
}

start_background() {
  case "$1" in
    storm | storm-wrong)
      if [ "$1" = storm ]; then login_script "$BENCH_PASSWORD"; else login_script "not the password"; fi
      storm_in_background $((DUR + 60))
      BG+=("$STORM_PID") ;;
    argon2) for _ in 1 2; do nice -n 19 target/release/examples/hash_cost 1000000 >/dev/null & BG+=($!); done ;;
    argon2-idle) for _ in 1 2; do chrt -i 0 target/release/examples/hash_cost 1000000 >/dev/null & BG+=($!); done ;;
    spin) for _ in 1 2; do nice -n 19 sh -c 'while :; do :; done' & BG+=($!); done ;;
    *) echo "unknown kind: $1" >&2; exit 2 ;;
  esac
}

me_load 2 >/dev/null
printf '%-12s %s\n' alone "$(me)"
for kind in "${KINDS[@]}"; do
  start_background "$kind"
  sleep 2
  printf '%-12s %s\n' "$kind" "$(me)"
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${BG[@]}" 2>/dev/null || true
  BG=()
  sleep 1
done
