#!/usr/bin/env bash
# Fairness between the projects of one tenant: a project's backlog must not starve a sibling
# project, as a tenant's must not starve another tenant. A release build, its own durable
# Postgres, the counting sink as the shared relay, Missive with the api and worker roles.
#
# Project B (a second project of the tenant) sends FAIR_RATE emails/s (default 20) for
# FAIR_SECONDS (default 20): first alone, then right after the tenant's default project A has
# has PROJECT_BACKLOG deliveries (default 100,000) due at once towards the same shared relay: one
# email sent through the API, its delivery copied that many times in SQL (as a burst queued
# faster than the worker drains would leave them). Prints one JSON row per phase: B's accept-to-delivery
# percentiles, from Missive's own records (each email's creation and its `email.delivered` event),
# and how many of A's deliveries were queued when B started and when B's last email was
# delivered. In arrival order B would wait behind all of A's mail queued before it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
FAIR_RATE=${FAIR_RATE:-20}
FAIR_SECONDS=${FAIR_SECONDS:-20}
PROJECT_BACKLOG=${PROJECT_BACKLOG:-100000}
results="$run_dir/results.jsonl"
start_missive missive.log api worker

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

key_a=$(create_key)
tenant=$(tenant_of "$key_a")
project=$(curl -fs -X POST "$base/v1/tenants/$tenant/projects" \
  -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
  -d '{"name":"sibling"}' | json_field id)
key_b=$(curl -fs -X POST "$base/v1/tenants/$tenant/projects/$project/api-keys" \
  -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
  -d '{"name":"sibling"}' | json_field token)

# a_backlog: A's deliveries not yet delivered.
a_backlog() {
  "$pg_bin/psql" "$db_url" -Atc "SELECT count(*) FROM deliveries
    WHERE tenant_id = '$tenant' AND project_id = '$tenant' AND status IN ('queued', 'deferred')"
}

# b_run PHASE: B sends at FAIR_RATE for FAIR_SECONDS; appends its percentiles once every one of
# its emails of this phase is delivered.
b_run() {
  local phase=$1 since sent backlog before
  since=$("$pg_bin/psql" "$db_url" -Atc "SELECT now()")
  before=$(a_backlog)
  echo "== project fairness, $phase: B at $FAIR_RATE/s for ${FAIR_SECONDS}s" >&2
  "$loadgen" latency --url "$base" --key "$key_b" --rate "$FAIR_RATE" --seconds "$FAIR_SECONDS" >&2
  sent=$((FAIR_RATE * FAIR_SECONDS))
  local deadline=$(( $(date +%s) + 300 ))
  while [ "$("$pg_bin/psql" "$db_url" -Atc "SELECT count(*) FROM deliveries
           WHERE tenant_id = '$tenant' AND project_id = '$project' AND status = 'delivered'
             AND created_at >= '$since'")" -lt "$sent" ] \
        && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  backlog=$(a_backlog)
  "$pg_bin/psql" "$db_url" -At -F ' ' -c "
    SELECT count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
           max(ms)
    FROM (SELECT extract(epoch FROM v.created_at - e.created_at) * 1000 AS ms
          FROM emails e JOIN email_events v
            ON v.tenant_id = e.tenant_id AND v.email_id = e.id AND v.type = 'email.delivered'
          WHERE e.tenant_id = '$tenant' AND e.project_id = '$project'
            AND e.created_at >= '$since') t" \
  | python3 -c "
import json, sys
n, p50, p99, worst = sys.stdin.read().split()
assert int(n) == $sent, f'B had {n} of $sent emails delivered'
print(json.dumps({'scenario': 'project_fairness', 'phase': '$phase', 'emails': int(n),
                  'p50_ms': float(p50), 'p99_ms': float(p99), 'max_ms': float(worst),
                  'a_backlog_at_start': int($before), 'a_backlog_at_end': int($backlog)}))" >>"$results"
  tail -n 1 "$results" >&2
}

b_run alone
echo "== project fairness: A has $PROJECT_BACKLOG deliveries due at once" >&2
email=$(curl -fs -X POST "$base/v1/emails" -H "Authorization: Bearer $key_a" \
  -H 'Content-Type: application/json' \
  -d '{"from":"a@bench.test","to":"a0@x.test","subject":"backlog","text":"b"}' | json_field id)
"$pg_bin/psql" "$db_url" -qc "INSERT INTO deliveries (tenant_id, project_id, id, email_id,
    recipient, kind, status, next_attempt_at)
  SELECT '$tenant', '$tenant', gen_random_uuid(), '$email', 'a' || n || '@x.test', 'to', 'queued',
         now()
  FROM generate_series(1, $PROJECT_BACKLOG) n"
b_run beside_backlog
cat "$results"
