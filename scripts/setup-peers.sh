#!/usr/bin/env bash
# Installs the real peers the tests talk to, in a venv at ./.venv (idempotent):
# awslambdaric (Python runtime client), cargo-lambda (its Runtime API emulator), moto (KMS, SSM,
# Secrets Manager), ddapm-test-agent (Datadog trace agent), datadog-lambda (the seed library, for
# benches and the ddtrace child), cargo-zigbuild + ziglang (glibc 2.26 builds).
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=scripts/peer-requirements.txt
stamp=.venv/.installed
if [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet -r "$requirements"
cp "$requirements" "$stamp"
