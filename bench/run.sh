#!/usr/bin/env bash
# The benchmark kit of BENCHMARKS.md. Builds in release mode, starts Passport on
# 127.0.0.1 (embedded, then Redis), creates users and measures with wrk at 64
# connections:
#   (a) GET /passport/me with a valid token against GET /healthz: req/s, p50, p99
#   (b) identify p99 while 32 connections log in continuously
#   (c) login throughput and p99 against the cost of one Argon2id hash
#   (d) RSS idle and with 1,000,000 live embedded sessions, and the restart time
# then the criterion micro-benchmarks of token verification. Prints one table.
# Usage: bench/run.sh [seconds per load run, default 10]
# Needs: wrk (installed from Debian's packages if missing), redis-server on
# 127.0.0.1:6379 for the Redis rows (skipped when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-10}"
CONNS=64
STORM=32
USERS=64

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
echo "bench: building (release)" >&2
cargo build --release --quiet --bin passport --example hash_cost --example seed_sessions
BIN=target/release/passport
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# Starts passport with extra env; sets ADDR and PID.
start() {
  local name=$1; shift
  mkdir -p "$WORK/$name"
  env PASSPORT_LISTEN=127.0.0.1:0 PASSPORT_DATA_DIR="$WORK/$name/data" \
      PASSPORT_AUDIT_LOG="$WORK/$name/audit.log" PASSPORT_SECRET_KEY=bench-secret-bench-secret-bench-secret \
      PASSPORT_RATE_LOGIN_IP=100000000/60 PASSPORT_RATE_REGISTER_IP=100000000/60 \
      PASSPORT_RATE_LOGIN_ACCOUNT=100000000/60 PASSPORT_HASH_QUEUE=4096 NO_COLOR=1 RUST_LOG=warn,passport::app=info,passport::store=info \
      "$@" "$BIN" serve 2> "$WORK/$name/log" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/.*addr=\([0-9.:]*\).*/\1/p' "$WORK/$name/log" | head -1)
    [ -n "$ADDR" ] && curl -sf "http://$ADDR/healthz" >/dev/null && return 0
    sleep 0.05
  done
  echo "bench: $name did not start" >&2; cat "$WORK/$name/log" >&2; exit 1
}

stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# wrk output on stdin → "rps p50_ms p99_ms errors" ($1: decimals of req/s).
# errors = non-2xx answers plus socket errors: a fast figure made of 503s or
# timeouts must not pass for a good one.
wrk_summary() {
  awk -v d="${1:-0}" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /^Requests\/sec/ {rps=$2}
    /Non-2xx or 3xx responses:/ {err+=$NF}
    /Socket errors:/ {for (i=3; i<=NF; i++) if ($i ~ /^[0-9]+,?$/) err+=$i+0}
    END {printf "%.*f %.2f %.2f %d\n", d, rps, p50, p99, err}'
}

wrk_run() {
  local out
  out=$(wrk -t2 -c"$1" -d"$2"s --latency "${@:3}")
  echo "$out" >> "$WORK/wrk.log"
  echo "$out" | wrk_summary
}

# Registers users u1..uN and prints their tokens, one per line.
make_users() {
  local base=$1 prefix=$2
  for i in $(seq 1 "$USERS"); do
    printf '{"mobile":"+86%s%04d","password":"bench horse battery staple"}\n' "$prefix" "$i"
  done > "$WORK/users.jsonl"
  xargs -P 4 -d '\n' -I{} curl -s -o /dev/null -X POST "$base/passport/register" \
    -H 'Content-Type: application/json' -d '{}' < "$WORK/users.jsonl"
}

token_of() {
  curl -s -X POST "$1/passport/login" -H 'Content-Type: application/json' \
    -d "{\"mobile\":\"$2\",\"password\":\"bench horse battery staple\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/'
}

cat > "$WORK/login.lua" <<EOF
-- Logs in as the bench users in turn (each login replaces that user's session).
local n, i = $USERS, 0
request = function()
  i = i % n + 1
  local body = string.format('{"mobile":"+86%s%04d","password":"bench horse battery staple"}', "1391000", i)
  return wrk.format("POST", "/passport/login", {["Content-Type"] = "application/json"}, body)
end
EOF

measure_identify() {   # $1 label; uses ADDR
  local base="http://$ADDR"
  make_users "$base" 1391000
  curl -s -o /dev/null -X POST "$base/passport/register" -H 'Content-Type: application/json' \
    -d '{"mobile":"+8613700000001","password":"bench horse battery staple"}'
  local token
  token=$(token_of "$base" +8613700000001)
  # The same request to both routes, Authorization header included: only the
  # route's own work differs. Each gets a short warm-up first.
  local auth="Authorization: JWT $token"
  wrk_run "$CONNS" 2 -H "$auth" "$base/healthz" >/dev/null
  read -r H_RPS H_P50 H_P99 H_ERR < <(wrk_run "$CONNS" "$DUR" -H "$auth" "$base/healthz")
  wrk_run "$CONNS" 2 -H "$auth" "$base/passport/me" >/dev/null
  read -r M_RPS M_P50 M_P99 M_ERR < <(wrk_run "$CONNS" "$DUR" -H "$auth" "$base/passport/me")
  echo "| $1 | GET /healthz | $H_RPS | $H_P50 | $H_P99 | $H_ERR |"
  echo "| $1 | GET /passport/me (identify + profile) | $M_RPS | $M_P50 | $M_P99 | $M_ERR |"
  echo "| $1 | ratio /me : /healthz | $(awk -v a="$M_RPS" -v b="$H_RPS" 'BEGIN {printf "%.1f%%", 100*a/b}') | | | |"
  BASE_P99=$M_P99
  TOKEN=$token
}

echo "bench: embedded" >&2
start embedded
echo "| store | measurement | req/s | p50 ms | p99 ms | errors |" > "$WORK/table"
echo "|---|---|---|---|---|---|" >> "$WORK/table"
IDLE_RSS=$(rss_mb "$PID")
measure_identify embedded >> "$WORK/table"

EMB_P99=$BASE_P99

echo "bench: login throughput" >&2
wrk -t1 -c"$STORM" -d"$DUR"s --latency --timeout 10s -s "$WORK/login.lua" "http://$ADDR" > "$WORK/login.txt"
read -r L_RPS L_P50 L_P99 L_ERR < <(wrk_summary 1 < "$WORK/login.txt")
echo "| embedded | POST /passport/login alone ($STORM connections) | $L_RPS | $L_P50 | $L_P99 | $L_ERR |" >> "$WORK/table"

echo "bench: login storm" >&2
wrk -t1 -c"$STORM" -d"$((DUR + 4))"s --latency --timeout 10s -s "$WORK/login.lua" "http://$ADDR" > "$WORK/storm.txt" &
STORM_PID=$!
sleep 2
read -r S_RPS S_P50 S_P99 S_ERR < <(wrk_run "$CONNS" "$DUR" -H "Authorization: JWT $TOKEN" "http://$ADDR/passport/me")
wait "$STORM_PID"
read -r SL_RPS SL_P50 SL_P99 SL_ERR < <(wrk_summary 1 < "$WORK/storm.txt")
{
  echo "| embedded | /passport/me during the login storm | $S_RPS | $S_P50 | $S_P99 | $S_ERR |"
  echo "| embedded | POST /passport/login (the storm, $STORM connections) | $SL_RPS | $SL_P50 | $SL_P99 | $SL_ERR |"
} >> "$WORK/table"
stop

HASH_MS=$(target/release/examples/hash_cost 15)
CORES=$(nproc)

if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "bench: redis" >&2
  PREFIX="passport-bench:$$:"
  start redis PASSPORT_REDIS_URL=redis://127.0.0.1:6379 PASSPORT_REDIS_PREFIX="$PREFIX"
  measure_identify redis >> "$WORK/table"
  stop
  redis-cli --scan --pattern "${PREFIX}*" | xargs -r -n 500 redis-cli del >/dev/null
else
  echo "| redis | skipped: nothing answers on 127.0.0.1:6379 | | | | |" >> "$WORK/table"
fi

echo "bench: 1,000,000 sessions" >&2
mkdir -p "$WORK/million/data"
target/release/examples/seed_sessions "$WORK/million/data" 1000000 >/dev/null
T0=$(date +%s.%N)
start million
T1=$(date +%s.%N)
MILLION_RSS=$(rss_mb "$PID")
LOADED=$(sed -n 's/.*sessions=\([0-9]*\).*elapsed_ms=\([0-9]*\).*/\1 sessions in \2 ms/p' "$WORK/million/log" | head -1)
stop

echo "bench: criterion (tokens, requests in process)" >&2
# Whole output to a file first: cutting the pipe early would kill cargo with EPIPE.
cargo bench --quiet --bench tokens --bench requests -- --noplot > "$WORK/criterion.txt" 2>/dev/null
# Median of one benchmark; criterion prints the name either on the time line or on the line before it.
criterion_median() {
  awk -v want="$1" '
    /time:/ { name = $0; sub(/ *time:.*/, "", name); if (name == "") name = prev
              if (name == want) { print $(NF-3) " " $(NF-2); exit } }
    NF { prev = $0 }' "$WORK/criterion.txt"
}
VERIFY=$(criterion_median "token verify (signature and every claim check)")
PARSE_VERIFY=$(criterion_median "header parse + token verify")
SIGN=$(criterion_median "token sign")
PARSE=$(criterion_median "header parse")
INPROC_H=$(criterion_median "GET /healthz (in process)")
INPROC_M=$(criterion_median "GET /passport/me (in process)")

cat "$WORK/table"
echo
echo "| measurement | value |"
echo "|---|---|"
echo "| machine | $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1) |"
echo "| identify p99 without / during the login storm (embedded) | $EMB_P99 ms / $S_P99 ms ($(awk -v a="$S_P99" -v b="$EMB_P99" 'BEGIN {printf "%.1fx", a/b}')) |"
echo "| one Argon2id hash (m=19456, t=2, p=1), one thread | $HASH_MS ms |"
echo "| login capacity cores / hash time | $(awk -v c="$CORES" -v h="$HASH_MS" 'BEGIN {printf "%.1f/s", c*1000/h}') |"
echo "| login throughput : capacity | $(awk -v r="$L_RPS" -v c="$CORES" -v h="$HASH_MS" 'BEGIN {printf "%.1f%%", 100*r/(c*1000/h)}') |"
echo "| RSS idle (embedded) | $IDLE_RSS MB |"
echo "| RSS with 1,000,000 live sessions | $MILLION_RSS MB |"
echo "| restart with 1,000,000 sessions (start to /healthz answering) | $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.2f s", b-a}') ($LOADED) |"
echo "| token verify, every claim check (criterion, median) | $VERIFY |"
echo "| header parse + token verify (criterion, median) | $PARSE_VERIFY |"
echo "| token sign (criterion, median) | $SIGN |"
echo "| header parse alone (criterion, median) | $PARSE |"
echo "| GET /healthz in process, every layer, no socket (criterion, median) | $INPROC_H |"
echo "| GET /passport/me in process, every layer, no socket (criterion, median) | $INPROC_M |"
