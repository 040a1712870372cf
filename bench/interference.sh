#!/usr/bin/env bash
# What costs identify its tail during a login storm? Measures GET /passport/me
# (64 connections, embedded store) alone, then beside one kind of background work:
#   storm        32 connections logging in continuously (what bench/run.sh does)
#   storm-wrong  the same with a wrong password: Argon2 and counters, no session write
#   argon2       two Argon2id loops in another process at nice 19 (no HTTP, no SQL)
#   argon2-idle  the same under SCHED_IDLE
#   spin         two busy loops at nice 19 that touch no memory
# Usage: bench/interference.sh [seconds per run, default 8] [kind ...]
# Needs what bench/run.sh needs; run that once first (it builds and installs wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-8}"
shift || true
KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || KINDS=(storm storm-wrong argon2 argon2-idle spin)
BIN=target/release/passport
cargo build --release --quiet --bin passport --example hash_cost
WORK=$(mktemp -d)
BG=()
cleanup() { for p in "${BG[@]:-}" "${PID:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

env PASSPORT_LISTEN=127.0.0.1:0 PASSPORT_DATA_DIR="$WORK/data" PASSPORT_AUDIT_LOG="$WORK/audit.log" \
    PASSPORT_SECRET_KEY=bench-secret-bench-secret-bench-secret PASSPORT_HASH_QUEUE=4096 \
    PASSPORT_RATE_LOGIN_IP=100000000/60 PASSPORT_RATE_REGISTER_IP=100000000/60 \
    PASSPORT_RATE_LOGIN_ACCOUNT=100000000/60 NO_COLOR=1 RUST_LOG=warn,passport::app=info \
    "$BIN" serve 2> "$WORK/log" &
PID=$!
for _ in $(seq 1 200); do
  ADDR=$(sed -n 's/.*addr=\([0-9.:]*\).*/\1/p' "$WORK/log" | head -1)
  [ -n "$ADDR" ] && curl -sf "http://$ADDR/healthz" >/dev/null && break
  sleep 0.05
done
BASE="http://$ADDR"
register() {
  curl -s -o /dev/null -X POST "$BASE/passport/register" -H 'Content-Type: application/json' \
    -d "{\"mobile\":\"$1\",\"password\":\"bench horse battery staple\"}"
}
for i in $(seq 1 64); do register "+861391000$(printf %04d "$i")"; done
register +8613700000001
TOKEN=$(curl -s -X POST "$BASE/passport/login" -H 'Content-Type: application/json' \
  -d '{"mobile":"+8613700000001","password":"bench horse battery staple"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')

login_script() {   # $1: the password the storm sends
  cat > "$WORK/login.lua" <<EOF
local i = 0
request = function()
  i = i % 64 + 1
  local body = string.format('{"mobile":"+861391000%04d","password":"$1"}', i)
  return wrk.format("POST", "/passport/login", {["Content-Type"] = "application/json"}, body)
end
EOF
}

# req/s, p50 and p99 of /me, and its non-2xx count
me() {
  wrk -t2 -c64 -d"$DUR"s --latency -H "Authorization: JWT $TOKEN" "$BASE/passport/me" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /^Requests\/sec/ {rps=$2} /Non-2xx/ {err=$NF}
    END {printf "%8.0f req/s  p50 %5.2f ms  p99 %5.2f ms  non-2xx %d\n", rps, p50, p99, err}'
}

start_background() {
  case "$1" in
    storm | storm-wrong)
      if [ "$1" = storm ]; then login_script "bench horse battery staple"; else login_script "not the password"; fi
      wrk -t1 -c32 -d$((DUR + 60))s --timeout 10s -s "$WORK/login.lua" "$BASE" >/dev/null &
      BG+=($!) ;;
    argon2) for _ in 1 2; do nice -n 19 target/release/examples/hash_cost 1000000 >/dev/null & BG+=($!); done ;;
    argon2-idle) for _ in 1 2; do chrt -i 0 target/release/examples/hash_cost 1000000 >/dev/null & BG+=($!); done ;;
    spin) for _ in 1 2; do nice -n 19 sh -c 'while :; do :; done' & BG+=($!); done ;;
    *) echo "unknown kind: $1" >&2; exit 2 ;;
  esac
}

wrk -t2 -c64 -d2s -H "Authorization: JWT $TOKEN" "$BASE/passport/me" >/dev/null
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
