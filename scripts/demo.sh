#!/usr/bin/env bash
# The demo: builds everything in release mode, starts `lambda-emulator` with `bootstrap` serving
# the example handlers, invokes them with curl, and shows responses, metric lines and traces.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
root=$PWD
lib="$root/target/release/libhandlers_example.so"
port=${DEMO_PORT:-9000}
log=$(mktemp)
trap 'kill "$emulator" 2>/dev/null || true; wait "$emulator" 2>/dev/null || true; rm -f "$log"' EXIT

run() { # run HANDLER: starts the emulator serving that handler
  target/release/lambda-emulator --listen "127.0.0.1:$port" --function-name demo --timeout 1 \
    --env DD_LAMBDA_HANDLER="$lib:$1" --env DD_FLUSH_TO_LOG=true --env DD_TRACE_ENABLED=true \
    --env DD_SERVICE=demo --env DD_ENV=local \
    -- target/release/bootstrap >>"$log" 2>&1 &
  emulator=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
}
invoke() { # invoke BODY: prints the response line with its request id
  curl -s -D /tmp/demo-headers -X POST --data "$1" "http://127.0.0.1:$port/2015-03-31/functions/demo/invocations"
  echo "   <- $(grep -i -E '^x-amzn-requestid|^x-amz-function-error' /tmp/demo-headers | tr -d '\r' | tr '\n' ' ')"
}
stop() { kill -TERM "$emulator"; wait "$emulator" 2>/dev/null || true; }

echo "== echo handler: two invokes, one an API Gateway event carrying a Datadog trace"
run echo
invoke '{"hello":"world"}'
invoke "$(cat "${SHARED_FIXTURES:-../shared/fixtures}/events/api-gateway.json" 2>/dev/null || echo '{"httpMethod":"GET"}')" | cut -c1-120
stop
echo "== panic handler: the panic is an error answer, and the next invoke is served"
run panic
invoke '{}'
invoke '{}'
stop
echo "== sleep handler past the 1 s timeout"
run sleep
invoke '{"ms": 1500}'
invoke '{"ms": 10}'
stop
echo "== what the function printed (metric lines, trace lines, bootstrap logs)"
cat "$log"
