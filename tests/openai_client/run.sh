#!/usr/bin/env bash
# End-to-end check of `slm serve` with the official OpenAI Node client.
# Usage: run.sh SLM_BINARY MODEL_PATH
# Starts the server on a free port with an API key, waits for GET /health, runs client_test.mjs,
# then sends SIGTERM and requires a clean exit (status 0) within 10 s.
# Exit status: 0 passed, 77 skipped (model file absent, no node/npm, or the openai package cannot
# be installed because there is no network), anything else failed.
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SLM_BINARY MODEL_PATH" >&2
  exit 2
fi
SLM_BINARY=$1
MODEL_PATH=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
API_KEY=test-key
MODEL_NAME=tiny

WORK=$(mktemp -d "${TMPDIR:-/tmp}/slm_openai_client.XXXXXX")
SERVER_LOG=$WORK/server.log
SERVER_PID=

cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $*" >&2
  if [[ -s $SERVER_LOG ]]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 40 "$SERVER_LOG" >&2
  fi
  exit 1
}

skip() {
  echo "SKIP: $*"
  exit 77
}

[[ -x $SLM_BINARY ]] || fail "SLM_BINARY '$SLM_BINARY' is not an executable file"
# Like the other tests that need ../shared/data, skip when the model is absent.
[[ -e $MODEL_PATH ]] || skip "model '$MODEL_PATH' is absent"
command -v python3 >/dev/null || fail "python3 is needed to pick a free port and poll /health"

# Prerequisites first, so that a skip does not start a server for nothing.
command -v node >/dev/null || skip "node is not installed"
command -v npm >/dev/null || skip "npm is not installed"
if [[ ! -d $HERE/node_modules/openai ]]; then
  echo "# installing the openai package (npm ci) in $HERE"
  if ! (cd "$HERE" && npm ci --no-audit --no-fund --prefer-offline) >"$WORK/npm.log" 2>&1; then
    if grep -qiE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|offline' \
        "$WORK/npm.log"; then
      tail -n 5 "$WORK/npm.log"
      skip "npm ci could not reach the registry (no network?)"
    fi
    cat "$WORK/npm.log" >&2
    fail "npm ci failed"
  fi
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
  fail "could not pick a free port"

"$SLM_BINARY" serve --model "$MODEL_NAME=$MODEL_PATH" --port "$PORT" --api-key "$API_KEY" \
  --parallel 2 --chat-template chatml --threads 2 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
echo "# server pid $SERVER_PID on port $PORT"

health_status() {  # prints the HTTP status of GET /health, or 000 when nothing answers
  python3 - "$PORT" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

deadline=$((SECONDS + 30))
while true; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID"
    code=$?
    SERVER_PID=
    fail "the server exited with status $code before /health answered 200"
  fi
  [[ $(health_status) == 200 ]] && break
  ((SECONDS < deadline)) || fail "GET /health did not return 200 within 30 s"
  sleep 0.2
done
echo "# server healthy"

SLM_BASE_URL="http://127.0.0.1:$PORT/v1" SLM_MODEL=$MODEL_NAME SLM_API_KEY=$API_KEY \
  node "$HERE/client_test.mjs" || fail "client_test.mjs failed (status $?)"

# A clean shutdown: SIGTERM must make the server exit 0 within 10 s.
kill -TERM "$SERVER_PID"
deadline=$((SECONDS + 10))
while kill -0 "$SERVER_PID" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "the server did not exit within 10 s of SIGTERM"
  sleep 0.1
done
wait "$SERVER_PID"
code=$?
SERVER_PID=
[[ $code -eq 0 ]] || fail "the server exited with status $code after SIGTERM, expected 0"
echo "# server stopped cleanly"
echo "PASS"
