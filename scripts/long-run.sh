#!/usr/bin/env bash
# The full long run of issue 8: RELIABILITY_INVOCATIONS (default 100 000) invocations through
# lambda-emulator, in dylib mode and in exec mode, all telemetry on, with release builds.
# The figures are printed and written to target/release/reliability/long-run-{dylib,exec}.json.
#
#   scripts/long-run.sh            # 100 000 invocations per mode
#   scripts/long-run.sh 20000      # fewer
set -euo pipefail
cd "$(dirname "$0")/.."
export RELIABILITY_INVOCATIONS="${1:-${RELIABILITY_INVOCATIONS:-100000}}"
# The test starts these: the example library and AWS's lambda_runtime echo, built alike.
cargo build --release -p handlers-example --lib --bins
cargo test --release -p bootstrap --test reliability_long_run -- --nocapture --test-threads=1
target="${CARGO_TARGET_DIR:-target}/release/reliability"
for mode in dylib exec; do
  echo "== $mode: $target/long-run-$mode.json"
  cat "$target/long-run-$mode.json"
done
