#!/usr/bin/env bash
# Wakeup latency: how late a 1 ms sleep returns (5000 samples), alone and beside
# two busy loops at nice 19 and under SCHED_IDLE. Tells a scheduler that is slow
# to wake a thread apart from CPU that is simply shared (docs/src/benchmarks.md).
set -euo pipefail
probe() {
  python3 - <<'PY'
import time
lat = []
for _ in range(5000):
    t = time.perf_counter()
    time.sleep(0.001)
    lat.append((time.perf_counter() - t - 0.001) * 1e6)
lat.sort()
n = len(lat)
print(f"p50 {lat[n//2]:6.0f} us  p99 {lat[int(n*0.99)]:6.0f} us  p99.9 {lat[int(n*0.999)]:6.0f} us  max {lat[-1]:6.0f} us")
PY
}
printf '%-22s %s\n' alone "$(probe)"
for runner in "nice -n 19" "chrt -i 0"; do
  case $runner in nice*) label="nice 19" ;; *) label="SCHED_IDLE" ;; esac
  loops=()
  for _ in 1 2; do $runner sh -c 'while :; do :; done' & loops+=($!); done
  sleep 0.5
  printf '%-22s %s\n' "2 busy loops, $label" "$(probe)"
  kill "${loops[@]}"; wait "${loops[@]}" 2>/dev/null || true
done
