#!/usr/bin/env bash
# Missive's REST benchmarks on this machine (`make bench`): a release build, its own durable
# Postgres (fsync and synchronous_commit on), a fast SMTP sink as the shared relay, then
#   1. REST accept: 20,000 emails from 32 concurrent clients, and the time until the sink holds
#      all of them (end to end);
#   2. REST latency: p50/p99 at a fixed 500 requests/s.
# Everything runs on loopback and stops when the script ends. Prints a markdown table.
set -euo pipefail
source "$(dirname "$0")/common.sh"

RATE=${BENCH_RATE:-500}
SECONDS_AT_RATE=${BENCH_SECONDS:-20}

start_missive missive.log api worker
key=$(create_key)

rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$missive_pid/status"; }

echo "== accept: $TOTAL emails, $CLIENTS clients" >&2
start=$(date +%s.%N)
accept=$("$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$TOTAL")
echo "$accept" >&2
wait_for_sink "$TOTAL"
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
