#!/usr/bin/env bash
# Missive's REST benchmarks on this machine (`make bench`): a release build, its own durable
# Postgres (fsync and synchronous_commit on), a fast SMTP sink as the shared relay, then
#   1. REST accept: 20,000 emails from 32 concurrent clients, and the time until the sink holds
#      all of them (end to end);
#   2. REST latency: p50/p99 at a fixed 500 requests/s.
# Everything runs on loopback and stops when the script ends. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL=${BENCH_TOTAL:-20000}
CLIENTS=${BENCH_CLIENTS:-32}
RATE=${BENCH_RATE:-500}
SECONDS_AT_RATE=${BENCH_SECONDS:-20}

cargo build --release --bin missive --bin missive-loadgen >&2
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
missive="$target_dir/release/missive"
loadgen="$target_dir/release/missive-loadgen"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/missive-bench.XXXXXX")
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
MISSIVE_DATABASE_URL="$db_url" MISSIVE_ADMIN_KEY="$admin_key" MISSIVE_LOG=warn \
MISSIVE_HTTP_ADDR="127.0.0.1:$http_port" MISSIVE_RELAY_URL="smtp://127.0.0.1:$sink_port?tls=none" \
MISSIVE_DB_MAX_CONNECTIONS="${BENCH_DB_CONNECTIONS:-48}" MISSIVE_RELAY_MAX_CONNECTIONS=16 \
  "$missive" serve --role api --role worker 2>"$run_dir/missive.log" &
missive_pid=$!
pids+=($missive_pid)
base="http://127.0.0.1:$http_port"
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

key=$(curl -fs -X POST "$base/v1/tenants" -H "Authorization: Bearer $admin_key" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"]["token"])')

count() { cat "$run_dir/sink.count" 2>/dev/null || echo 0; }
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$missive_pid/status"; }

echo "== accept: $TOTAL emails, $CLIENTS clients" >&2
start=$(date +%s.%N)
accept=$("$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$TOTAL")
echo "$accept" >&2
deadline=$(( $(date +%s) + 600 ))
while [ "$(count)" -lt "$TOTAL" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
end=$(date +%s.%N)
delivered=$(count)
e2e=$(python3 -c "print(round($delivered / ($end - $start)))")

echo "== latency: $RATE/s for ${SECONDS_AT_RATE}s" >&2
latency=$("$loadgen" latency --url "$base" --key "$key" --rate "$RATE" --seconds "$SECONDS_AT_RATE")
echo "$latency" >&2
peak_rss=$(( $(rss_kib) / 1024 ))

field() { python3 -c "import json,sys; print(round(json.loads(sys.argv[1])[sys.argv[2]], 1))" "$1" "$2"; }
cat <<TABLE
| scenario | measured | target | met |
| --- | --- | --- | --- |
| REST accept, $CLIENTS clients, $TOTAL emails | $(field "$accept" per_second) emails/s (p50 $(field "$accept" p50_ms) ms, p99 $(field "$accept" p99_ms) ms, errors $(field "$accept" errors)) | ≥ 3,000/s | $(python3 -c "print('yes' if $(field "$accept" per_second) >= 3000 else 'no')") |
| End to end to the sink | $e2e emails/s ($delivered of $TOTAL delivered) | ≥ 1,500/s | $(python3 -c "print('yes' if $e2e >= 1500 else 'no')") |
| REST latency at $RATE req/s | p50 $(field "$latency" p50_ms) ms, p99 $(field "$latency" p99_ms) ms (errors $(field "$latency" errors)) | p99 < 25 ms | $(python3 -c "print('yes' if $(field "$latency" p99_ms) < 25 else 'no')") |
| Missive peak RSS | $peak_rss MiB | < 300 MiB | $(python3 -c "print('yes' if $peak_rss < 300 else 'no')") |
TABLE
