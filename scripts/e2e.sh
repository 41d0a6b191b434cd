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
SES_PORT=$(free_port) SNS_PORT=$(free_port) PUSH_PORT=$(free_port)
PORT=$PORT WS_PORT=$WS_PORT PUSH_SERVICE_PORT=$PUSH_PORT SES_PORT=$SES_PORT SES_ENDPOINT="http://127.0.0.1:$SES_PORT" \
  SNS_PORT=$SNS_PORT SNS_ENDPOINT="http://127.0.0.1:$SNS_PORT" SMTP_PORT=0 LAMBDA_PORT=0 \
  EMAIL_LINK_BASE="http://127.0.0.1:$PORT" TABLE_NAME="chat-e2e-$$" UPLOADS_BUCKET="chat-e2e-$$" \
  S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_DATA_DIR="$data" RUST_LOG=warn \
  AI_PROVIDER=openai OPENAI_BASE_URL="http://127.0.0.1:$MODEL_PORT/v1" OPENAI_MODEL=double \
  "$server" serve >"$artifacts/devserver.log" 2>&1 &
pid=$!
trap 'kill $pid $model ${idp:-} ${oidc:-} 2>/dev/null; rm -rf "$data"' EXIT
wait_for() { # URL PID LOG
  for _ in $(seq 1 100); do
    curl -fs "$1" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.2
  done
  cat "$3" >&2; exit 1
}
wait_for "http://127.0.0.1:$PORT/app/config.json" $pid "$artifacts/devserver.log"

# The console's deployed sign-in (authorization code with PKCE) against a real OpenID
# provider on loopback (web/tests/idp.mjs), on a second stack that, like a deployed
# one, takes only that provider's RS256 ID tokens.
IDP_PORT=$(free_port) OIDC_PORT=$(free_port) OIDC_WS_PORT=$(free_port)
node web/tests/idp.mjs "$IDP_PORT" "http://127.0.0.1:$OIDC_PORT/app/console.html" >"$artifacts/idp.log" 2>&1 &
idp=$!
wait_for "http://127.0.0.1:$IDP_PORT/jwks" $idp "$artifacts/idp.log"
auth=$(printf '{"authorize_url":"http://127.0.0.1:%s/auth","token_url":"http://127.0.0.1:%s/token","client_id":"chat-console","scope":"openid chat"}' "$IDP_PORT" "$IDP_PORT")
env -u JWT_SECRET -u UPLOADS_BUCKET -u S3_ENDPOINT \
  PORT=$OIDC_PORT WS_PORT=$OIDC_WS_PORT PUSH_SERVICE_PORT=0 SES_PORT=0 SNS_PORT=0 SMTP_PORT=0 LAMBDA_PORT=0 TABLE_NAME="chat-e2e-oidc-$$" RUST_LOG=warn \
  JWT_ALGORITHM=RS256 JWT_JWKS="$(curl -fs "http://127.0.0.1:$IDP_PORT/jwks")" \
  JWT_ISSUER="http://127.0.0.1:$IDP_PORT" JWT_AUDIENCE=chat-console WEB_AUTH="$auth" \
  "$server" serve >"$artifacts/devserver-oidc.log" 2>&1 &
oidc=$!
wait_for "http://127.0.0.1:$OIDC_PORT/app/config.json" $oidc "$artifacts/devserver-oidc.log"

E2E_ARTIFACTS=$artifacts E2E_SES="http://127.0.0.1:$SES_PORT" E2E_PUSH="http://127.0.0.1:$PUSH_PORT" E2E_OIDC_BASE="http://127.0.0.1:$OIDC_PORT" \
  node web/tests/e2e.mjs "http://127.0.0.1:$PORT"
