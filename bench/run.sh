#!/usr/bin/env bash
# The benchmark kit of docs/src/benchmarks.md. Builds in release mode, starts Passport on
# 127.0.0.1 (embedded, then Redis), creates users and measures with wrk at 64
# connections:
#   (a) GET /passport/me with a valid token against GET /healthz: req/s, p50, p99
#       (on Redis twice: as configured by default, and with the session cache off)
#   (b) identify p99 while 32 connections log in continuously
#   (c) login throughput and p99 against the cost of one Argon2id hash
#   (d) RSS idle and with 1,000,000 live embedded sessions, and the restart time
#   (e) nginx-rtmp's publish and play hooks and /auth/verify against /healthz
#   (f) GET /passport/me with metrics recorded against the same build without
# then the criterion micro-benchmarks of token verification. Prints one table.
# Usage: bench/run.sh [seconds per load run, default 10]
# Needs: wrk (installed from Debian's packages if missing), redis-server on
# 127.0.0.1:6379 for the Redis rows (skipped when absent); those rows end with a
# Redis Cluster of three primaries of the script's own, on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-10}"
CONNS=64
STORM=32

. bench/common.sh
scratch

ensure_wrk
echo "bench: building (release)" >&2
cargo build --release --quiet --bin passport --example hash_cost --example seed_sessions

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

wrk_run() {
  local out
  out=$(wrk -t2 -c"$1" -d"$2"s --latency "${@:3}")
  echo "$out" >> "$WORK/wrk.log"
  echo "$out" | wrk_summary
}

login_script "$BENCH_PASSWORD"

measure_identify() {   # $1 label; uses ADDR
  local base="http://$ADDR"
  make_users "$base"
  local token
  token=$(probe_token "$base")
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

# The live-stream decisions on the same server: nginx-rtmp's publish hook (with the
# stream's key), its play hook (with a viewer's ticket) and forward auth with a
# token, each against /healthz measured right before them.
measure_streams() {   # uses ADDR and TOKEN (the probe user's)
  local base="http://$ADDR" key ticket
  local env=(env PASSPORT_DATA_DIR="$WORK/embedded/data" PASSPORT_AUDIT_LOG="$WORK/embedded/audit.log"
             PASSPORT_SECRET_KEY=bench-secret-bench-secret-bench-secret)
  "${env[@]}" "$BIN" user role add "$PROBE_MOBILE" streamer >/dev/null
  key=$("${env[@]}" "$BIN" stream add "$PROBE_MOBILE" bench 2>/dev/null)
  ticket=$(curl -s -X POST "$base/passport/streams/bench/ticket" -H "Authorization: JWT $TOKEN" |
    sed -E 's/.*"ticket":"([^"]+)".*/\1/')
  for hook in "publish:call=publish&name=bench&type=live&key=$key" "play:call=play&name=bench&ticket=$ticket"; do
    cat > "$WORK/${hook%%:*}.lua" <<LUA
wrk.method = "POST"
wrk.body = "app=live&flashver=FMLE%2F3.0&addr=127.0.0.1&clientid=1&${hook#*:}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
  done
  wrk_run "$CONNS" 2 "$base/healthz" >/dev/null
  read -r H_RPS H_P50 H_P99 H_ERR < <(wrk_run "$CONNS" "$DUR" "$base/healthz")
  echo "| embedded | GET /healthz (before the stream rows) | $H_RPS | $H_P50 | $H_P99 | $H_ERR |"
  local ratio
  for row in "publish:POST /hooks/nginx-rtmp, publish with a key" "play:POST /hooks/nginx-rtmp, play with a ticket"; do
    wrk_run "$CONNS" 2 -s "$WORK/${row%%:*}.lua" "$base/hooks/nginx-rtmp" >/dev/null
    read -r R P50 P99 ERR < <(wrk_run "$CONNS" "$DUR" -s "$WORK/${row%%:*}.lua" "$base/hooks/nginx-rtmp")
    ratio=$(awk -v a="$R" -v b="$H_RPS" 'BEGIN {printf "%.1f%%", 100*a/b}')
    echo "| embedded | ${row#*:} ($ratio of /healthz) | $R | $P50 | $P99 | $ERR |"
  done
  wrk_run "$CONNS" 2 -H "Authorization: JWT $TOKEN" "$base/auth/verify" >/dev/null
  read -r R P50 P99 ERR < <(wrk_run "$CONNS" "$DUR" -H "Authorization: JWT $TOKEN" "$base/auth/verify")
  ratio=$(awk -v a="$R" -v b="$H_RPS" 'BEGIN {printf "%.1f%%", 100*a/b}')
  echo "| embedded | GET /auth/verify with a token ($ratio of /healthz) | $R | $P50 | $P99 | $ERR |"
}
echo "bench: live-stream hooks and forward auth" >&2
measure_streams >> "$WORK/table"

echo "bench: metrics on and off" >&2
SAVED_PID=$PID SAVED_ADDR=$ADDR
measure_metrics_cost "$DUR" 3 >> "$WORK/table"
PID=$SAVED_PID ADDR=$SAVED_ADDR

echo "bench: login throughput" >&2
# The hash is timed right before and right after the login run (100 hashes each,
# about 2 s), and the capacity uses the mean of the two: on a shared host one hash
# takes 14 ms in one second and 22 ms in the next, so a few hashes timed a minute
# away say little.
HASH_BEFORE=$(target/release/examples/hash_cost 100)
wrk -t1 -c"$STORM" -d"$DUR"s --latency --timeout 10s -s "$WORK/login.lua" "http://$ADDR" > "$WORK/login.txt"
read -r L_RPS L_P50 L_P99 L_ERR < <(wrk_summary 1 < "$WORK/login.txt")
HASH_AFTER=$(target/release/examples/hash_cost 100)
HASH_MS=$(awk -v a="$HASH_BEFORE" -v b="$HASH_AFTER" 'BEGIN {printf "%.2f", (a+b)/2}')
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

CORES=$(nproc)

if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "bench: redis" >&2
  PREFIX="passport-bench:$$:"
  start redis PASSPORT_REDIS_URL=redis://127.0.0.1:6379 PASSPORT_REDIS_PREFIX="$PREFIX"
  measure_identify redis >> "$WORK/table"
  NODE_ME=$M_RPS
  stop
  # The same with the memory of valid sessions off: one Redis round trip per identify.
  start redis-uncached PASSPORT_REDIS_URL=redis://127.0.0.1:6379 PASSPORT_REDIS_PREFIX="$PREFIX" \
    PASSPORT_REDIS_SESSION_CACHE=false
  measure_identify "redis, session cache off" >> "$WORK/table"
  stop
  redis-cli --scan --pattern "${PREFIX}*" | xargs -r -n 500 redis-cli del >/dev/null

  echo "bench: redis cluster" >&2
  start_cluster 3
  start redis-cluster PASSPORT_REDIS_URL="$CLUSTER_URL"
  measure_identify "redis cluster, 3 primaries" >> "$WORK/table"
  stop
  echo "| redis cluster, 3 primaries | /me on the Cluster : /me on the single node, both with the session cache | $(awk -v a="$M_RPS" -v b="$NODE_ME" 'BEGIN {printf "%.1f%%", 100*a/b}') | | | |" >> "$WORK/table"
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
echo "| one Argon2id hash (m=19456, t=2, p=1), one thread, before / after the login run | $HASH_BEFORE / $HASH_AFTER ms (mean $HASH_MS) |"
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
