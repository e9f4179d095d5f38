#!/usr/bin/env bash
# REST alone, for comparing two builds in turns (as bench/smtp_probe.sh does for SMTP): a release
# build of this checkout, its own durable Postgres, the counting sink, Missive (api and worker),
# then PROBE_EMAILS (default 20000) REST emails from 32 clients, accepted and delivered. Prints the
# accept rate and the CPU Missive and Postgres spent per email. PROBE_TEMPLATE=1 sends them
# through a published template that renders the same body; PROBE_WEBHOOKS=1 gives the tenant an
# endpoint subscribed to every event type (no dispatcher runs: what the outbox rows cost).
# PROBE_READS=N then reads 100 of those emails back N times in all (`GET /v1/emails/{id}`, 32
# clients) and prints the CPU per read.
set -euo pipefail
source "$(dirname "$0")/common.sh"
emails=${PROBE_EMAILS:-20000}
start_missive missive.log api worker
key=$(create_key)
args=()
if [ "${PROBE_WEBHOOKS:-0}" = 1 ]; then subscribe_receiver "$key"; fi
if [ "${PROBE_TEMPLATE:-0}" = 1 ]; then
  publish_template "$key" bench-message
  args=(--template bench-message)
fi
missive_cpu=$(python3 bench/measure.py cpu "$missive_pid"); pg_cpu=$(python3 bench/measure.py cpu "$pg_pid")
accept=$("$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$emails" "${args[@]}")
wait_for_sink "$emails"
python3 - "$accept" <<PY
import json, sys
row = json.loads(sys.argv[1])
missive = ($(python3 bench/measure.py cpu "$missive_pid") - $missive_cpu) * 1e6 / $emails
pg = ($(python3 bench/measure.py cpu "$pg_pid") - $pg_cpu) * 1e6 / $emails
assert $(count) == $emails, "the sink did not receive every email"
print(f"accept {row['per_second']:,.0f}/s, errors {row['errors']}; CPU per email: "
      f"Missive {missive:.0f} µs, Postgres {pg:.0f} µs")
PY
reads=${PROBE_READS:-0}
if [ "$reads" -gt 0 ]; then
  email_paths "$key" >"$run_dir/read_paths"
  missive_cpu=$(python3 bench/measure.py cpu "$missive_pid"); pg_cpu=$(python3 bench/measure.py cpu "$pg_pid")
  read=$("$loadgen" read --url "$base" --key "$key" --paths "$run_dir/read_paths" \
    --clients "$CLIENTS" --total "$reads")
  python3 - "$read" <<PY
import json, sys
row = json.loads(sys.argv[1])
missive = ($(python3 bench/measure.py cpu "$missive_pid") - $missive_cpu) * 1e6 / $reads
pg = ($(python3 bench/measure.py cpu "$pg_pid") - $pg_cpu) * 1e6 / $reads
print(f"reads {row['per_second']:,.0f}/s, p99 {row['p99_ms']:.1f} ms, errors {row['errors']}; "
      f"CPU per read: Missive {missive:.0f} µs, Postgres {pg:.0f} µs")
PY
fi
