#!/usr/bin/env bash
# Builds everything in release, then runs the side-by-side benchmark; arguments go to the bench:
#   scripts/bench.sh                 # every case, 10 000 invokes each, plots in bench-results/
#   scripts/bench.sh --quick         # 1 000 invokes each
#   scripts/bench.sh --long          # case a, 100 000 invokes, the RSS slope
# The Python cases (e, e-direct, f) need the venv of scripts/setup-peers.sh; without it they are
# skipped, with that hint.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
exec target/release/bench "$@"
