#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 300 s each) and prints the
# executions each reached. Usage: fuzz/run.sh [seconds per target] [target...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain the
# sanitizer flags are enabled with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(auth_header token_verify json_bodies)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${secs}s"
  mkdir -p "corpus/$t"
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 > "logs/$t.log" 2>&1 || {
    echo "fuzz: $t FAILED (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"; tail -30 "logs/$t.log"; exit 1; }
  echo "fuzz: $t: $(grep -E '^Done [0-9]+ runs' "logs/$t.log" | tail -1)"
done
