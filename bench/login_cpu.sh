#!/usr/bin/env bash
# Where a login's CPU goes: logins/s and CPU milliseconds per login, by thread
# group (hashing threads, request workers, SQLite connection threads, the rest),
# read from /proc around a login-only wrk run of the kit's login script, with one
# hash timed alone before and after. Compares builds: give each binary to measure
# (default target/release/passport); they are taken in turn, ROUNDS times.
# Usage: bench/login_cpu.sh [binary …]   (env: DUR seconds per run, default 8; ROUNDS, default 2)
# Needs the release build of examples/hash_cost (bench/run.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${DUR:-8}"
ROUNDS="${ROUNDS:-2}"
STORM=32
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=(target/release/passport)

. bench/common.sh
scratch
ensure_wrk
login_script "$BENCH_PASSWORD"

# CPU ticks (utime+stime) of each thread group of process $1: "hash workers sqlite other".
ticks() {
  local h=0 w=0 s=0 o=0 name t
  for task in /proc/"$1"/task/*; do
    name=$(cat "$task/comm" 2>/dev/null) || continue
    t=$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null) || continue
    case $name in
      password-hash*) h=$((h + t)) ;;
      tokio-rt-worker) w=$((w + t)) ;;
      sqlx-sqlite-wor) s=$((s + t)) ;;
      *) o=$((o + t)) ;;
    esac
  done
  echo "$h $w $s $o"
}

HZ=$(getconf CLK_TCK)
printf '%-24s %8s %14s %8s %8s %8s %8s\n' binary logins/s "hash alone ms" hash workers sqlite other
for _ in $(seq 1 "$ROUNDS"); do
  for b in "${BINS[@]}"; do
    BIN=$b
    start "login-cpu"
    make_users "http://$ADDR"
    wrk -t1 -c"$STORM" -d2s --timeout 10s -s "$WORK/login.lua" "http://$ADDR" >/dev/null
    before=$(target/release/examples/hash_cost 50)
    read -r h0 w0 s0 o0 < <(ticks "$PID")
    wrk -t1 -c"$STORM" -d"$DUR"s --timeout 10s -s "$WORK/login.lua" "http://$ADDR" > "$WORK/login.txt"
    read -r h1 w1 s1 o1 < <(ticks "$PID")
    after=$(target/release/examples/hash_cost 50)
    n=$(awk '/requests in/ {print $1}' "$WORK/login.txt")
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/login.txt")
    awk -v b="$b" -v r="$rps" -v x="$before" -v y="$after" -v n="$n" -v hz="$HZ" \
        -v h=$((h1 - h0)) -v w=$((w1 - w0)) -v s=$((s1 - s0)) -v o=$((o1 - o0)) \
      'BEGIN { k = 1000 / hz / n;
               printf "%-24s %8.1f %14s %8.2f %8.2f %8.2f %8.2f\n", b, r, sprintf("%.2f/%.2f", x, y), h*k, w*k, s*k, o*k }'
    stop
    rm -rf "$WORK/login-cpu"
  done
done
