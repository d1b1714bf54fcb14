#!/usr/bin/env bash
# Serving benchmark of `slm serve`, the "Serving" table of ../shared/docs/ANCHORS.md: for each
# model and each client count, a fresh server (2 threads, 16 slots), `serve_load` driving it with
# closed-loop streaming chat clients (64 tokens each, ignore_eos) for 20 s, then SIGTERM, which
# must end the server with status 0. Prints the markdown table on stdout, progress on stderr.
#
# Usage: scripts/bench-serve.sh [MODEL...]      MODEL = PATH or NAME=PATH (NAME: the API model
#   name and the table label; default the file name without .gguf). Default models:
#   models/slm-brown-6m.gguf and $SLM_SERVE_BENCH_LARGE (PATH or NAME=PATH) when set.
# Environment: CLIENTS ("1 4 8 16 32"), SECONDS or BENCH_SECONDS (20), MAX_TOKENS (64),
#   PORT (18090), PARALLEL (16), THREADS (2), SERVE_ARGS (more `slm serve` flags), JSON_OUT (file
#   that serve_load appends one JSON line per setting to), START_TIMEOUT (120 s), BUILD_DIR
#   (build), SLM (BUILD_DIR/slm), SERVE_LOAD (BUILD_DIR/bench/serve_load), LOG_DIR (a temp dir),
#   LLAMA_SERVER (path of a llama-server binary: measure it instead of slm, with the same
#   threads, slots, continuous batching and a context of PARALLEL x 256 shared by the slots).
# Exit status: 0 when every server started, answered, and exited 0 on SIGTERM; 1 otherwise.

# Bash's own SECONDS counts the script's run time, so ${SECONDS:-20} would never be 20: take the
# caller's SECONDS only when it came from the environment, before anything else runs.
caller_seconds=$(printenv SECONDS || true)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

build_dir=${BUILD_DIR:-build}
slm=${SLM:-$build_dir/slm}
serve_load=${SERVE_LOAD:-$build_dir/bench/serve_load}
duration=${BENCH_SECONDS:-${caller_seconds:-20}}
max_tokens=${MAX_TOKENS:-64}
read -r -a client_counts <<<"${CLIENTS:-1 4 8 16 32}"
port=${PORT:-18090}
parallel=${PARALLEL:-16}
threads=${THREADS:-2}
# The models measured here have no chat template of their own: ChatML, as the anchors used.
read -r -a serve_args <<<"${SERVE_ARGS:---chat-template chatml}"
start_timeout=${START_TIMEOUT:-120}
log_dir=${LOG_DIR:-$(mktemp -d /tmp/bench-serve.XXXXXX)}
mkdir -p "$log_dir"

models=("$@")
if [[ ${#models[@]} -eq 0 ]]; then
  models=(models/slm-brown-6m.gguf)
  if [[ -n ${SLM_SERVE_BENCH_LARGE:-} ]]; then
    models+=("$SLM_SERVE_BENCH_LARGE")
  else
    echo "bench-serve: SLM_SERVE_BENCH_LARGE not set: small model only" >&2
  fi
fi

llama_server=${LLAMA_SERVER:-}
[[ -z $llama_server || -x $llama_server ]] || { echo "bench-serve: LLAMA_SERVER=$llama_server is not executable" >&2; exit 1; }
[[ -n $llama_server || -x $slm ]] || { echo "bench-serve: no server binary $slm (build slm_cli, or set SLM)" >&2; exit 1; }
[[ -x $serve_load ]] || { echo "bench-serve: no $serve_load (build serve_load, or set SERVE_LOAD)" >&2; exit 1; }

url="http://127.0.0.1:$port"
server_pid=""
# An interrupted run must not leave a server behind.
trap '[[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null' EXIT
trap 'exit 130' INT TERM

health_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$url/health" 2>/dev/null; }

# Starts the server for model $1 (NAME=PATH); sets server_pid. Returns 1 when it never became healthy.
start_server() {
  local spec=$1 log=$2
  if [[ $(health_code) == 200 ]]; then
    echo "bench-serve: something already answers on $url; set PORT" >&2
    return 1
  fi
  if [[ -n $llama_server ]]; then
    "$llama_server" -m "${spec#*=}" --alias "${spec%%=*}" --port "$port" -np "$parallel" -cb -t "$threads" \
      -c $((parallel * 256)) >"$log" 2>&1 &
  else
    "$slm" serve --model "$spec" --port "$port" --parallel "$parallel" --threads "$threads" \
      "${serve_args[@]}" >"$log" 2>&1 &
  fi
  server_pid=$!
  local waited=0
  until [[ $(health_code) == 200 ]]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid"
      echo "bench-serve: server exited with status $? before answering /health; log $log:" >&2
      tail -n 20 "$log" >&2
      server_pid=""
      return 1
    fi
    if ((waited >= start_timeout * 10)); then
      echo "bench-serve: /health not 200 after ${start_timeout}s; log $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  return 0
}

# SIGTERM, then up to 30 s for a clean exit; sets server_status to the exit status or "killed".
# (Not run in $(...): only this shell can wait for its child.)
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null
  local waited=0
  while kill -0 "$server_pid" 2>/dev/null && ((waited < 300)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_status=killed
  else
    wait "$server_pid"
    server_status=$?
  fi
  server_pid=""
}

rows=()
notes=()
for model in "${models[@]}"; do
  if [[ $model == *=* ]]; then
    name=${model%%=*}
    path=${model#*=}
  else
    path=$model
    name=$(basename "$path" .gguf)
  fi
  if [[ ! -f $path ]]; then
    notes+=("$name: no model file $path")
    continue
  fi
  for clients in "${client_counts[@]}"; do
    log="$log_dir/serve-$name-$clients.log"
    echo "bench-serve: $name, $clients clients, ${duration}s" >&2
    if ! start_server "$name=$path" "$log"; then
      [[ -n $server_pid ]] && stop_server
      notes+=("$name, $clients clients: server did not start (log $log)")
      continue
    fi
    load_args=(--url "$url" --model "$name" --clients "$clients" --seconds "$duration"
      --max-tokens "$max_tokens" --pid "$server_pid")
    [[ -n ${JSON_OUT:-} ]] && load_args+=(--json "$JSON_OUT")
    if row=$("$serve_load" "${load_args[@]}"); then
      rows+=("$row")
      echo "$row" >&2
    else
      notes+=("$name, $clients clients: serve_load failed")
    fi
    stop_server
    if [[ $server_status != 0 ]]; then
      status=$server_status
      if [[ $status =~ ^[0-9]+$ ]] && ((status > 128)); then
        status="$status (signal $((status - 128)))"
      fi
      notes+=("$name, $clients clients: server exit status on SIGTERM: $status (log $log)")
    fi
  done
done

echo "| model | clients | total tok/s | per-stream tok/s | time to first token p50/p99 ms | per-token p50/p99 ms | errors | peak RSS MiB |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
for row in "${rows[@]}"; do echo "$row"; done
if [[ ${#notes[@]} -gt 0 ]]; then
  echo
  for note in "${notes[@]}"; do echo "- $note"; done
  exit 1
fi
