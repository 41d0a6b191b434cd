#!/usr/bin/env bash
# The web client's end-to-end test (web/tests/e2e.mjs) in headless Chromium, against
# a dev server of its own: free ports on 127.0.0.1, a fresh table in the DynamoDB
# Local at $DYNAMODB_ENDPOINT (make test's), a fresh S3 directory. Screenshots go to
# target/e2e-artifacts/ (not committed). Needs the devserver binary built.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-browser.sh
endpoint=${DYNAMODB_ENDPOINT:-}
set -a; source scripts/local.env; set +a
export DYNAMODB_ENDPOINT=${endpoint:-$DYNAMODB_ENDPOINT}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port) WS_PORT=$(free_port) S3_PORT=$(free_port)
data=$(mktemp -d)
artifacts=${E2E_ARTIFACTS:-target/e2e-artifacts}
rm -rf "$artifacts"
mkdir -p "$artifacts"
server=${CARGO_TARGET_DIR:-target}/debug/devserver

# The AI provider is the one outside party: an OpenAI-compatible double on loopback.
MODEL_PORT=$(free_port)
python3 web/tests/model-double.py "$MODEL_PORT" &
model=$!
PORT=$PORT WS_PORT=$WS_PORT TABLE_NAME="chat-e2e-$$" UPLOADS_BUCKET="chat-e2e-$$" \
  S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_DATA_DIR="$data" RUST_LOG=warn \
  AI_PROVIDER=openai OPENAI_BASE_URL="http://127.0.0.1:$MODEL_PORT/v1" OPENAI_MODEL=double \
  "$server" serve >"$artifacts/devserver.log" 2>&1 &
pid=$!
trap 'kill $pid $model 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/app/config.json" >/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$artifacts/devserver.log" >&2; exit 1; }
  sleep 0.2
done
E2E_ARTIFACTS=$artifacts node web/tests/e2e.mjs "http://127.0.0.1:$PORT"
