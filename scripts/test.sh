#!/usr/bin/env bash
# The test command: installs the peers (once), builds every binary the tests start, runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-peers.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
