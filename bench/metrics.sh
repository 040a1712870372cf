#!/usr/bin/env bash
# The metrics rows of docs/src/benchmarks.md alone: GET /passport/me on a server recording
# metrics against the same build recording none, in turn (bench/run.sh runs the
# same measurement among the others).
# Usage: bench/metrics.sh [seconds per load run, default 10] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
scratch
ensure_wrk
echo "bench: building (release)" >&2
cargo build --release --quiet --bin passport
echo "| store | measurement | req/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
measure_metrics_cost "${1:-10}" "${2:-3}"
