#!/bin/bash
# A custom runtime in bash + curl, in the shape of AWS's custom-runtime tutorial: the exec-mode
# peer with the fewest moving parts. It needs AWS_LAMBDA_RUNTIME_API, like any runtime.
#
# Behaviour by event:
#   {"error": "msg"}  posts an error (errorType BashError) with that message;
#   {"exit": N}       exits with status N without answering;
#   anything else     is echoed back.
set -euo pipefail

API="http://${AWS_LAMBDA_RUNTIME_API:?AWS_LAMBDA_RUNTIME_API is not set}/2018-06-01/runtime"
HEADERS="$(mktemp)"
trap 'rm -f "$HEADERS"' EXIT

while true; do
  # Wait for the next event; its headers go to a file, its body to EVENT_DATA.
  EVENT_DATA="$(curl -sS -LD "$HEADERS" "$API/invocation/next")"
  REQUEST_ID="$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"

  if [[ "$EVENT_DATA" =~ \"exit\"[[:space:]]*:[[:space:]]*([0-9]+) ]]; then
    exit "${BASH_REMATCH[1]}"
  fi

  if [[ "$EVENT_DATA" =~ \"error\"[[:space:]]*:[[:space:]]*\"([^\"\\]*)\" ]]; then
    BODY="{\"errorMessage\": \"${BASH_REMATCH[1]}\", \"errorType\": \"BashError\", \"stackTrace\": []}"
    curl -sS -o /dev/null -X POST "$API/invocation/$REQUEST_ID/error" \
      -H "Lambda-Runtime-Function-Error-Type: BashError" -d "$BODY"
    continue
  fi

  curl -sS -o /dev/null -X POST "$API/invocation/$REQUEST_ID/response" --data-binary "$EVENT_DATA"
done
