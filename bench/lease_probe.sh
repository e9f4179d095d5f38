#!/usr/bin/env bash
# What fair claiming costs as tenants multiply: the delivery lease statement with 10 and with
# 5,000 tenants holding due work (PROBE_TENANTS, space separated, default "10 5000"), the same
# 5,000 due deliveries in all. A release build, its own durable Postgres with pg_stat_statements,
# the counting sink. For each count: the due rows are written with SQL (copies of one email sent
# through the API, so the worker sends real messages), then a worker-only Missive drains them and
# the lease statement's calls, mean time and buffers per call are read from pg_stat_statements.
set -euo pipefail
BENCH_PG_STATEMENTS=1
source "$(dirname "$0")/common.sh"
psql() { "$pg_bin/psql" "$db_url" -v ON_ERROR_STOP=1 "$@"; }
psql -qc "CREATE EXTENSION pg_stat_statements"
due=${PROBE_DUE:-5000}

start_missive missive.log api
seed_key=$(create_key)
seed_id=$(curl -fs -X POST "$base/v1/emails" -H "Authorization: Bearer $seed_key" \
  -H 'Content-Type: application/json' \
  -d '{"from":"bench@acme.test","to":"rcpt@x.test","subject":"probe","text":"hello"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
kill "$missive_pid"; wait "$missive_pid" 2>/dev/null || true
# The seed's own delivery goes out with the first drain; it is not counted.
delivered=$(( $(count) + 1 ))

for tenants in ${PROBE_TENANTS:-10 5000}; do
  per=$(( due / tenants ))
  psql -q <<SQL
CREATE TEMP TABLE t AS
  SELECT gen_random_uuid() AS id, 'probe-$tenants-' || g AS name FROM generate_series(1, $tenants) g;
INSERT INTO tenants (id, name) SELECT id, name FROM t;
CREATE TEMP TABLE e AS
  SELECT t.id AS tenant_id, gen_random_uuid() AS id FROM t CROSS JOIN generate_series(1, $per);
INSERT INTO emails (tenant_id, id, message_id, from_address, envelope_from, subject, text, mime)
  SELECT e.tenant_id, e.id, s.message_id, s.from_address, s.envelope_from, s.subject, s.text, s.mime
  FROM e, emails s WHERE s.id = '$seed_id';
INSERT INTO deliveries (tenant_id, id, email_id, recipient, kind)
  SELECT tenant_id, gen_random_uuid(), id, 'rcpt@x.test', 'to' FROM e;
SELECT pg_stat_statements_reset();
SQL
  start=$(date +%s.%N)
  start_missive "worker-$tenants.log" worker
  wait_for_sink $(( delivered + tenants * per ))
  end=$(date +%s.%N)
  kill "$missive_pid"; wait "$missive_pid" 2>/dev/null || true
  delivered=$(count)
  psql -At -F ' ' -c "
    SELECT calls, round(mean_exec_time::numeric, 2), round((shared_blks_hit / calls)::numeric)
    FROM pg_stat_statements WHERE query LIKE 'WITH expired AS%' ORDER BY calls DESC LIMIT 1" \
  | python3 -c "
import sys
calls, ms, blocks = sys.stdin.read().split()
print(f'$tenants tenants with due work ($per each): lease statement {calls} calls, '
      f'{ms} ms and {blocks} buffers per call; {$tenants * $per / ($end - $start):,.0f} deliveries/s')"
done
