# What the bench scripts share; sourced from the repository root, not run.
# The caller sets WORK (a scratch directory) and PIDS (an array), and kills PIDS on
# exit: `scratch` below does all three. Passport runs with the rate limits out of the way (the load comes from one
# address) and a hashing queue deep enough for the login storm.

BIN=target/release/passport
BENCH_PASSWORD="bench horse battery staple"
BENCH_USERS=64
STORM_PREFIX=1391000     # the storm's users are +86${STORM_PREFIX}0001 …
PROBE_MOBILE=+8613700000001

# A scratch directory in WORK, the servers started to be listed in PIDS; on exit,
# those servers are killed and the directory removed.
scratch() {
  WORK=$(mktemp -d)
  PIDS=()
  trap 'for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
}

ensure_wrk() {
  if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  fi
}

# Starts passport with extra env (name=value …); sets ADDR and PID.
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

# Registers the storm's users and the probe user on the server at $1.
make_users() {
  local base=$1
  {
    for i in $(seq 1 "$BENCH_USERS"); do
      printf '{"mobile":"+86%s%04d","password":"%s"}\n' "$STORM_PREFIX" "$i" "$BENCH_PASSWORD"
    done
    printf '{"mobile":"%s","password":"%s"}\n' "$PROBE_MOBILE" "$BENCH_PASSWORD"
  } > "$WORK/users.jsonl"
  xargs -P 4 -d '\n' -I{} curl -s -o /dev/null -X POST "$base/passport/register" \
    -H 'Content-Type: application/json' -d '{}' < "$WORK/users.jsonl"
}

# The access token of a fresh login of the probe user on the server at $1.
probe_token() {
  curl -s -X POST "$1/passport/login" -H 'Content-Type: application/json' \
    -d "{\"mobile\":\"$PROBE_MOBILE\",\"password\":\"$BENCH_PASSWORD\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/'
}

# Writes $WORK/login.lua: a wrk script that logs in as the storm's users in turn
# (each login replaces that user's session), with password $1.
login_script() {
  cat > "$WORK/login.lua" <<LUA
local n, i = $BENCH_USERS, 0
request = function()
  i = i % n + 1
  local body = string.format('{"mobile":"+86%s%04d","password":"%s"}', "$STORM_PREFIX", i, "$1")
  return wrk.format("POST", "/passport/login", {["Content-Type"] = "application/json"}, body)
end
LUA
}

# GET /passport/me with $TOKEN on $BASE, 2 threads and 64 connections for $1
# seconds; prints wrk_summary's line. `me_load 2 >/dev/null` is the warm-up.
me_load() {
  wrk -t2 -c64 -d"$1"s --latency -H "Authorization: JWT $TOKEN" "$BASE/passport/me" | wrk_summary
}

# Starts the login storm of $WORK/login.lua on $BASE (32 connections) for $1
# seconds in the background; sets STORM_PID.
storm_in_background() {
  wrk -t1 -c32 -d"$1"s --timeout 10s -s "$WORK/login.lua" "$BASE" >/dev/null &
  STORM_PID=$!
}

# What recording metrics costs identify: two servers of the same build, one with
# metrics (the default) and one without (PASSPORT_METRICS_ALLOW=none: no recorder,
# no timing layer), loaded in turn with GET /passport/me for $1 seconds, $2 rounds,
# the order swapped every round. Prints table rows (store | measurement | req/s |
# p50 | p99 | errors) and the on : off ratio of the mean req/s.
measure_metrics_cost() {
  local dur=$1 rounds=$2 on off on_token off_token
  # The one started first measures a little faster (about 2% with both off): that
  # is the one without metrics, so the comparison does not flatter them.
  start metrics-off PASSPORT_METRICS_ALLOW=none; off=$ADDR; local off_pid=$PID
  start metrics-on; on=$ADDR; local on_pid=$PID
  make_users "http://$on"; make_users "http://$off"
  on_token=$(probe_token "http://$on"); off_token=$(probe_token "http://$off")
  local load
  load() { wrk -t2 -c64 -d"$2"s --latency -H "Authorization: JWT $3" "http://$1/passport/me" | wrk_summary; }
  load "$on" 2 "$on_token" >/dev/null; load "$off" 2 "$off_token" >/dev/null
  local sum_on=0 sum_off=0 r line
  for r in $(seq 1 "$rounds"); do
    for which in $( [ $((r % 2)) -eq 1 ] && echo "on off" || echo "off on" ); do
      if [ "$which" = on ]; then line=$(load "$on" "$dur" "$on_token"); else line=$(load "$off" "$dur" "$off_token"); fi
      read -r RPS P50 P99 ERR <<< "$line"
      echo "| embedded | GET /passport/me, metrics $which, round $r | $RPS | $P50 | $P99 | $ERR |"
      if [ "$which" = on ]; then sum_on=$((sum_on + ${RPS%.*})); else sum_off=$((sum_off + ${RPS%.*})); fi
    done
  done
  echo "| embedded | metrics on : off, mean req/s over $rounds rounds | $(awk -v a="$sum_on" -v b="$sum_off" 'BEGIN {printf "%.1f%%", 100*a/b}') | | | |"
  kill "$on_pid" "$off_pid"; wait "$on_pid" "$off_pid" 2>/dev/null || true
}

# A Redis Cluster of $1 primaries on free loopback ports, in WORK, its servers in
# PIDS; sets CLUSTER_URL (redis+cluster://h:p,…).
start_cluster() {
  local ports=() port nodes=()
  for _ in $(seq 1 "$1"); do
    # A node also listens on its port + 10000 (the cluster bus): both must be free.
    port=$(python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 55000)
    try:
        for q in (p, p + 10000):
            socket.socket().bind(("127.0.0.1", q))
        print(p)
        break
    except OSError:
        pass')
    mkdir -p "$WORK/cluster/$port"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --cluster-enabled yes \
      --cluster-config-file nodes.conf --dir "$WORK/cluster/$port" >/dev/null 2>&1 &
    PIDS+=("$!")
    ports+=("$port")
    nodes+=("127.0.0.1:$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    redis-cli -p "$port" ping >/dev/null 2>&1 || { echo "bench: cluster node $port did not start" >&2; exit 1; }
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-yes >/dev/null
  for port in "${ports[@]}"; do
    for _ in $(seq 1 600); do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q cluster_state:ok && break
      sleep 0.05
    done
  done
  CLUSTER_URL="redis+cluster://$(IFS=,; echo "${nodes[*]}")"
}
