# Fairness between routes (sourced by bench/run.sh and bench/fairness_probe.sh, after common.sh,
# with Missive running the api and worker roles as $missive_pid).
#
# Tenant B sends FAIR_RATE emails/s (default 20) for FAIR_SECONDS (default 20) through the shared
# relay, first on an otherwise idle system, then while tenant A has a backlog of FAIR_BACKLOG
# emails (default 100,000) towards its own slow server: a sink that answers each message after
# 50 ms, reached through at most MISSIVE_TENANT_RELAY_MAX_CONNECTIONS connections (run.sh sets 2).
# B's time from accept to delivery comes from Missive's own records: each email's creation and its
# `email.delivered` event. Each phase runs FAIR_REPEATS times (default 3), each time with a new
# tenant B, and appends one row per run: the p99 of 400 emails is their fourth slowest, so one
# slow moment of a noisy machine moves a single run far; the report compares medians.

FAIR_RATE=${FAIR_RATE:-20}
FAIR_SECONDS=${FAIR_SECONDS:-20}
FAIR_BACKLOG=${FAIR_BACKLOG:-100000}
FAIR_REPEATS=${FAIR_REPEATS:-3}

# b_trickle PHASE: a new tenant B sends at FAIR_RATE for FAIR_SECONDS; appends its accept-to-
# delivery percentiles once every one of its emails is delivered.
b_trickle() {
  local phase=$1 key tenant sent
  key=$(create_key)
  tenant=$(tenant_of "$key")
  echo "== fairness, $phase: B at $FAIR_RATE/s for ${FAIR_SECONDS}s" >&2
  "$loadgen" latency --url "$base" --key "$key" --rate "$FAIR_RATE" --seconds "$FAIR_SECONDS" >&2
  sent=$((FAIR_RATE * FAIR_SECONDS))
  local deadline=$(( $(date +%s) + 300 ))
  while [ "$("$pg_bin/psql" "$db_url" -Atc "SELECT count(*) FROM deliveries
           WHERE tenant_id = '$tenant' AND status = 'delivered'")" -lt "$sent" ] \
        && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
  "$pg_bin/psql" "$db_url" -At -F ' ' -c "
    SELECT count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
           max(ms),
           (SELECT count(*) FROM deliveries d JOIN tenants t ON t.id = d.tenant_id
            WHERE t.smtp_host IS NOT NULL AND d.status IN ('queued', 'deferred'))
    FROM (SELECT extract(epoch FROM v.created_at - e.created_at) * 1000 AS ms
          FROM emails e JOIN email_events v
            ON v.tenant_id = e.tenant_id AND v.email_id = e.id AND v.type = 'email.delivered'
          WHERE e.tenant_id = '$tenant') t" \
  | python3 -c "
import json, sys
n, p50, p99, worst, backlog = sys.stdin.read().split()
assert int(n) == $sent, f'B had {n} of $sent emails delivered'
print(json.dumps({'scenario': 'fairness', 'phase': '$phase', 'emails': int(n),
                  'p50_ms': float(p50), 'p99_ms': float(p99), 'max_ms': float(worst),
                  'a_backlog': int(backlog)}))" >>"$results"
  tail -n 1 "$results" >&2
}

# upkeep_done: vacuums the tables the runs before grew, checkpoints, and waits (two minutes at
# most) for autovacuum. Queuing A's backlog inserts 100,000 rows into each queue table, and in
# make bench the scenarios before leave millions of event and outbox rows: vacuuming them and
# writing them out would otherwise run during B's runs, which are to measure the worker beside
# the backlog, not Postgres's upkeep.
upkeep_done() {
  "$pg_bin/psql" "$db_url" -qc "VACUUM (ANALYZE) deliveries, emails, email_events, webhook_events, webhook_attempts"
  "$pg_bin/psql" "$db_url" -qc "CHECKPOINT"
  autovacuum_done $(( $(date +%s) + 120 ))
}

fairness() {
  local i
  upkeep_done
  for i in $(seq "$FAIR_REPEATS"); do b_trickle idle; done
  # Tenant A and its slow server.
  local port key tenant
  port=$(free_port)
  "$loadgen" sink --port "$port" --count-file "$run_dir/slow.count" --delay-ms 50 &
  pids+=($!)
  key=$(create_key)
  tenant=$(tenant_of "$key")
  curl -fs -X PATCH "$base/v1/tenants/$tenant" -H "Authorization: Bearer $admin_key" \
    -H 'Content-Type: application/json' \
    -d "{\"smtp\":{\"host\":\"127.0.0.1\",\"port\":$port,\"tls\":\"none\"}}" >/dev/null
  echo "== fairness: A queues $FAIR_BACKLOG emails towards its slow server" >&2
  "$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$FAIR_BACKLOG" >&2
  upkeep_done
  for i in $(seq "$FAIR_REPEATS"); do b_trickle backlog; done
  # What is left of A's backlog would keep the worker busy through the runs that follow.
  "$pg_bin/psql" "$db_url" -qc "UPDATE deliveries SET status = 'canceled'
    WHERE tenant_id = '$tenant' AND status IN ('queued', 'deferred')"
}
