#!/usr/bin/env bash
# slm serve against llama-server on the same models, interleaved setting by setting (each client
# count runs slm, then llama-server, back to back) so that both see the same machine load: these
# machines are shared and drift by tens of percent within minutes.
#
# Usage: LLAMA_SERVER=/path/to/llama-server scripts/bench-serve-vs-llama.sh NAME=PATH [NAME=PATH ...]
# Environment: CLIENTS ("1 4 8 16 32") and everything scripts/bench-serve.sh takes (SECONDS, ...).
# Prints one markdown table (rows: model, clients, server) on stdout.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[[ -n ${LLAMA_SERVER:-} && -x ${LLAMA_SERVER:-} ]] || { echo "set LLAMA_SERVER to a llama-server binary" >&2; exit 1; }
(($# > 0)) || { echo "usage: LLAMA_SERVER=... $0 NAME=PATH [NAME=PATH ...]" >&2; exit 1; }
read -r -a client_counts <<<"${CLIENTS:-1 4 8 16 32}"
llama=$LLAMA_SERVER
unset LLAMA_SERVER
status=0
echo "| model | clients | server | total tok/s | per-stream tok/s | time to first token p50/p99 ms | per-token p50/p99 ms | errors | peak RSS MiB |"
echo "|---|--:|---|--:|--:|--:|--:|--:|--:|"
for model in "$@"; do
  for c in "${client_counts[@]}"; do
    for server in slm llama-server; do
      if [[ $server == slm ]]; then
        out=$(CLIENTS=$c scripts/bench-serve.sh "$model") || status=1
      else
        # Its own port: the previous server's closed connections leave the port in TIME_WAIT, and
        # llama-server binds without SO_REUSEADDR.
        out=$(CLIENTS=$c PORT=$((${PORT:-18090} + 1)) LLAMA_SERVER=$llama scripts/bench-serve.sh "$model") || status=1
      fi
      # The data row of bench-serve's table, with the server's name after the client count.
      row=$(grep -E "^\| [^|]+ \| $c \|" <<<"$out" | tail -n 1)
      [[ -n $row ]] && sed -E "s/^(\| [^|]+ \| $c \|)/\1 $server |/" <<<"$row"
    done
  done
done
exit $status
