#!/usr/bin/env bash
# Each feature's cost per email, alone and all together (what issue 18's full-features scenario
# measures, in small, for comparing builds): a release build, its own durable Postgres, the
# counting sink, Missive (api, worker and webhooks in one process), then PROBE_EMAILS (default
# 10000) REST emails from 32 clients per run, accepted and delivered, for a new tenant each run:
#   plain      nothing on;
#   template   every email rendered from a published template;
#   dkim       the sender's domain verified, so every email is DKIM-signed (RSA 2048);
#   quota      a daily quota (never reached), so every accept counts against it;
#   suppress   one recipient in a hundred suppressed;
#   webhooks   one endpoint subscribed to every event type, with its verifying receiver;
#   full       all of them at once.
# PROBE_RUNS (default "plain template dkim quota suppress webhooks full") picks and orders them.
# Prints one line per run: accept rate, then Missive's and Postgres's CPU per email.
# PROBE_STATEMENTS=1 adds, per run, the statements that cost Postgres most (pg_stat_statements:
# calls, execution time, buffers touched and dirtied, and WAL, each per email); PROBE_PERF=1 adds
# the functions Missive spent its CPU in (perf, sampling the process through the run).
set -euo pipefail
BENCH_PG_STATEMENTS=${PROBE_STATEMENTS:-0}
source "$(dirname "$0")/common.sh"
if [ "$BENCH_PG_STATEMENTS" = 1 ]; then "$pg_bin/psql" "$db_url" -qc "CREATE EXTENSION pg_stat_statements"; fi
emails=${PROBE_EMAILS:-10000}
runs=${PROBE_RUNS:-plain template dkim quota suppress webhooks full}
measure="python3 bench/measure.py"
start_missive missive.log api worker webhooks

auth() { echo "Authorization: Bearer $1"; }

# setup KEY FEATURE: turns FEATURE on for the key's tenant, adding to `args` what the load
# generator needs for it. (Not run in a command substitution: the webhook receiver it starts would
# hold that substitution's output open.)
setup() {
  local key=$1 feature=$2 tenant id
  case $feature in
    template)
      publish_template "$key" bench-message
      args+=(--template bench-message) ;;
    dkim)
      # Verified by hand: what is measured is signing, not DNS.
      id=$(curl -fs -X POST "$base/v1/domains" -H "$(auth "$key")" \
        -H 'Content-Type: application/json' -d '{"name":"bench.test"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
      "$pg_bin/psql" "$db_url" -qAtc "UPDATE domains SET status = 'verified' WHERE id = '$id'" ;;
    quota)
      tenant=$(curl -fs "$base/v1/tenant" -H "$(auth "$key")" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
      curl -fs -X PATCH "$base/v1/tenants/$tenant" -H "Authorization: Bearer $admin_key" \
        -H 'Content-Type: application/json' \
        -d '{"rate_limit": {"emails_per_day": 1000000000, "emails_per_month": 1000000000}}' >/dev/null ;;
    suppress)
      for start in $(seq 0 10000 $((emails - 1))); do
        python3 -c "import json; print(json.dumps({'emails': ['user%d@sink.test' % i for i in range($start, min($start + 10000, $emails), 100)]}))" \
          | curl -fs -X POST "$base/v1/suppressions/batch/add" -H "$(auth "$key")" \
            -H 'Content-Type: application/json' --data-binary @- >/dev/null
      done ;;
    webhooks) subscribe_receiver "$key" ;;
  esac
}

for run in $runs; do
  key=$(create_key)
  args=() suppressed=0
  features=$run
  if [ "$run" = full ]; then features="template dkim quota suppress webhooks"; fi
  for feature in $features; do
    setup "$key" "$feature"
    if [ "$feature" = suppress ]; then suppressed=$(( (emails + 99) / 100 )); fi
  done
  sleep 0.5 # the caches hear of the new domain and template
  before=$(count)
  if [ "$BENCH_PG_STATEMENTS" = 1 ]; then "$pg_bin/psql" "$db_url" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null; fi
  if [ "${PROBE_PERF:-0}" = 1 ]; then
    perf record -q -F 999 -g -p "$missive_pid" -o "$run_dir/perf.data" 2>/dev/null &
    perf_pid=$!
  fi
  missive_cpu=$($measure cpu "$missive_pid"); pg_cpu=$($measure cpu "$pg_pid")
  accept=$("$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$emails" "${args[@]}")
  wait_for_sink $((before + emails - suppressed))
  if [[ " $features " == *" webhooks "* ]]; then
    # Until the receiver has stopped counting for a second.
    last=-1
    while [ "$(received)" != "$last" ]; do last=$(received); sleep 1; done
  fi
  python3 - "$accept" <<PY
import json, sys
row = json.loads(sys.argv[1])
missive = ($($measure cpu "$missive_pid") - $missive_cpu) * 1e6 / $emails
pg = ($($measure cpu "$pg_pid") - $pg_cpu) * 1e6 / $emails
delivered = $(count) - $before
assert delivered == $emails - $suppressed, f"the sink received {delivered}"
print(f"{'$run':9} accept {row['per_second']:6,.0f}/s, errors {row['errors']}; CPU per email: "
      f"Missive {missive:4.0f} µs, Postgres {pg:4.0f} µs; webhooks verified: $(received)")
PY
  if [ "$BENCH_PG_STATEMENTS" = 1 ]; then
    "$pg_bin/psql" "$db_url" -qAt -F ' | ' -c "
      SELECT round(calls::numeric / $emails, 2) AS calls,
             round((total_exec_time * 1000 / $emails)::numeric) AS exec_us,
             round((shared_blks_hit + shared_blks_read)::numeric / $emails, 1) AS blocks,
             round(shared_blks_dirtied::numeric / $emails, 2) AS dirtied,
             round(wal_bytes / $emails) AS wal_bytes,
             left(regexp_replace(query, '\s+', ' ', 'g'), 90)
      FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15" \
      | sed 's/^/    /' | { echo "    per email: calls | exec µs | blocks | dirtied | WAL bytes | statement"; cat; }
  fi
  if [ -n "${perf_pid:-}" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; perf_pid=
    perf report -q -i "$run_dir/perf.data" --no-children --sort dso,symbol --percent-limit 1.5 --stdio -g none 2>/dev/null \
      | grep -v '^$' | head -30 | sed 's/^/    /'
  fi
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; receiver_pid= receiver_count=/dev/null; fi
done
