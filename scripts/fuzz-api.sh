#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis (PyPI, .venv-fuzz) generates requests from
# openapi.yaml against the dev server on 127.0.0.1, with valid local tokens, and checks
# there is no 5xx and every response (status, headers, body) matches the document.
#   scripts/fuzz-api.sh [MAX_EXAMPLES]     (default 30 per operation and role)
# FUZZ_DDB_PORT / FUZZ_API_PORT choose the ports (defaults 8003 / 3003); everything
# listens on 127.0.0.1 and stops on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-30}
ddb_port=${FUZZ_DDB_PORT:-8003}
api_port=${FUZZ_API_PORT:-3003}
venv=.venv-fuzz

if [[ ! -x $venv/bin/schemathesis ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q -r tools/requirements-fuzz.txt
fi

server_pid='' ai_pid=''
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  [[ -n $ai_pid ]] && kill "$ai_pid" 2>/dev/null || true
  scripts/dynamodb-local.sh stop --port "$ddb_port" >/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/dynamodb-local.sh stop --port "$ddb_port" >/dev/null || true
scripts/dynamodb-local.sh start --port "$ddb_port" --in-memory
set -a; source scripts/local.env; set +a
export DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb_port TABLE_NAME=chat-fuzz PORT=$api_port RUST_LOG=warn CHAT_METRICS=off
# AI replies from a local double of the OpenAI chat-completions protocol, so
# ai-response is fuzzed past its provider (with AI off it answers 503 by design).
ai_port=$((api_port + 1))
python3 - "$ai_port" <<'PY' &
import http.server, json, sys
class Double(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "A reply from the local double."}}],
                           "usage": {"total_tokens": 12}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Double).serve_forever()
PY
ai_pid=$!
export AI_PROVIDER=openai OPENAI_BASE_URL=http://127.0.0.1:$ai_port OPENAI_MODEL=local-double
cargo build -q --locked -p devserver
devserver="${CARGO_TARGET_DIR:-target}/debug/devserver"
"$devserver" serve >.local/fuzz-api-server.log 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$api_port/" && break
  sleep 0.1
done

token() { "$devserver" token --sub "$1" --role "$2" --org acme; }
# Some real data, so listings and searches have something to return.
seed=$(token u-100 customer)
for title in "Order 12345 late" "Refund for order 777"; do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$api_port/chat/conversations" \
    -H "Authorization: Bearer $seed" -H 'Content-Type: application/json' \
    -d "{\"title\": \"$title\", \"agent_id\": \"a-1\"}"
done

status=0
for who in "u-100 customer" "a-1 agent" "a-9 admin"; do
  set -- $who
  echo "== schemathesis as $2 ($1), $examples examples per operation"
  "$venv/bin/schemathesis" run openapi.yaml \
    --url "http://127.0.0.1:$api_port" \
    -H "Authorization: Bearer $(token "$1" "$2")" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$examples" --seed 7 --workers 1 --request-timeout 10 \
    --suppress-health-check all --no-color || status=1
done
if grep -q panicked .local/fuzz-api-server.log; then
  echo "the dev server panicked (see .local/fuzz-api-server.log)"; status=1
fi
exit $status
