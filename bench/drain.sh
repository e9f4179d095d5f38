#!/usr/bin/env bash
# Each role alone (`bench/drain.sh`): Missive with only the API role accepts TOTAL emails from 32
# clients (the worker stopped, so nothing competes with it), then only the worker role drains the
# queue into the counting sink. Prints the accept figures and the drain rate. Same release build,
# durable Postgres and loopback sink as bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/common.sh"

start_missive api.log api
key=$(create_key)

echo "== API alone: $TOTAL emails, $CLIENTS clients" >&2
"$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$TOTAL"
kill "$missive_pid"; wait "$missive_pid" 2>/dev/null || true

echo "== worker alone: draining $TOTAL" >&2
start=$(date +%s.%N)
start_missive worker.log worker
wait_for_sink "$TOTAL"
end=$(date +%s.%N)
python3 -c "print('{\"delivered\": %d, \"seconds\": %.2f, \"per_second\": %.0f}' % ($(count), $end - $start, $(count) / ($end - $start)))"
