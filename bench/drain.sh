#!/usr/bin/env bash
# Each role alone (`bench/drain.sh`): Missive with only the API role accepts TOTAL emails from 32
# clients (the worker stopped, so nothing competes with it), then only the worker role drains the
# queue into the counting sink. Prints the accept figures and the drain rate. Same release build,
# durable Postgres and loopback sink as bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL=${BENCH_TOTAL:-20000}
CLIENTS=${BENCH_CLIENTS:-32}

cargo build --release --bin missive --bin missive-loadgen >&2
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
missive="$target_dir/release/missive"
loadgen="$target_dir/release/missive-loadgen"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/missive-drain.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pg.sh destroy "$run_dir/pg" >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

db_url=$(scripts/pg.sh start "$run_dir/pg" --port auto)
sink_port=$(free_port)
http_port=$(free_port)
"$loadgen" sink --port "$sink_port" --count-file "$run_dir/sink.count" &
pids+=($!)

admin_key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export MISSIVE_DATABASE_URL="$db_url" MISSIVE_ADMIN_KEY="$admin_key" MISSIVE_LOG=warn \
  MISSIVE_HTTP_ADDR="127.0.0.1:$http_port" MISSIVE_RELAY_URL="smtp://127.0.0.1:$sink_port?tls=none" \
  MISSIVE_DB_MAX_CONNECTIONS="${BENCH_DB_CONNECTIONS:-48}" MISSIVE_RELAY_MAX_CONNECTIONS=16
"$missive" serve --role api 2>"$run_dir/api.log" &
api_pid=$!
pids+=($api_pid)
base="http://127.0.0.1:$http_port"
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
key=$(curl -fs -X POST "$base/v1/tenants" -H "Authorization: Bearer $admin_key" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"]["token"])')

echo "== API alone: $TOTAL emails, $CLIENTS clients" >&2
"$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$TOTAL"
kill "$api_pid"; wait "$api_pid" 2>/dev/null || true

echo "== worker alone: draining $TOTAL" >&2
count() { cat "$run_dir/sink.count" 2>/dev/null || echo 0; }
start=$(date +%s.%N)
"$missive" serve --role worker 2>"$run_dir/worker.log" &
pids+=($!)
deadline=$(( $(date +%s) + 600 ))
while [ "$(count)" -lt "$TOTAL" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
end=$(date +%s.%N)
python3 -c "print('{\"delivered\": %d, \"seconds\": %.2f, \"per_second\": %.0f}' % ($(count), $end - $start, $(count) / ($end - $start)))"
