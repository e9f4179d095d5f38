#!/usr/bin/env bash
# SMTP alone, for comparing two builds quickly: a release build of this checkout, its own durable
# Postgres, the counting sink, Missive (api, smtp, worker and webhooks) with a tenant trusting
# loopback, then `smtp-source -s 20 -l 2048 -m N` (PROBE_MESSAGES, default 8000). Prints the
# accept rate, the CPU Missive and Postgres spent per message (delivery included), and Postgres's
# per-table scan and write counters before | after. To compare two builds, run it with
# BENCH_MISSIVE set to each, in turns. PROBE_STATEMENTS=1 adds the statements that cost Postgres most (see features_probe.sh);
# PROBE_FEATURES (say "dkim quota webhooks", as bench/features.sh sets them up, the domain being
# acme.test) turns features on for the tenant, with a dispatcher in the same process.
# Needs Postfix's smtp-source (bench/run.sh installs Debian's postfix package).
set -euo pipefail
BENCH_PG_STATEMENTS=${PROBE_STATEMENTS:-0}
source "$(dirname "$0")/common.sh"
command -v smtp-source >/dev/null || { echo "smtp-source is missing: apt-get install postfix" >&2; exit 1; }
source bench/features.sh
start_missive missive.log api smtp worker webhooks
key=$(create_key '{"trusted_networks":["127.0.0.0/8"]}')
features_db=$db_url dkim_domain=acme.test
for feature in ${PROBE_FEATURES:-}; do feature_setup "$key" "$feature"; done
sleep 0.5 # the caches hear of the new domain
psql_at() { "$pg_bin/psql" "$db_url" -Atc "$1"; }
counters() {
  psql_at "SELECT relname, seq_scan, coalesce(idx_scan, 0), n_tup_ins, n_tup_upd
           FROM pg_stat_user_tables ORDER BY relname"
}
messages=${PROBE_MESSAGES:-8000}
counters >"$run_dir/before"
statements_reset
pg_cpu=$(python3 bench/measure.py cpu "$pg_pid"); missive_cpu=$(python3 bench/measure.py cpu "$missive_pid")
start=$(date +%s.%N)
smtp-source -s 20 -l 2048 -m "$messages" -f bench@acme.test -t rcpt@x.test "127.0.0.1:$smtp_port"
end=$(date +%s.%N)
wait_for_sink "$messages"
if [[ " ${PROBE_FEATURES:-} " == *" webhooks "* ]]; then wait_for_receiver_quiet; fi
pg_cpu=$(python3 -c "print($(python3 bench/measure.py cpu "$pg_pid") - $pg_cpu)")
missive_cpu=$(python3 -c "print($(python3 bench/measure.py cpu "$missive_pid") - $missive_cpu)")
# Backends publish their table counters lazily (about once a second, when idle): wait for them.
for _ in $(seq 1 40); do
  [ "$(psql_at "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'emails'")" -ge "$messages" ] && break
  sleep 0.5
done
counters >"$run_dir/after"
python3 -c "print(f'accept {$messages / ($end - $start):.0f}/s, Missive {$missive_cpu * 1e6 / $messages:.0f} us and Postgres {$pg_cpu * 1e6 / $messages:.0f} us per message')"
echo "table|seq scans|index scans|inserts|updates, before | after"
paste -d'|' "$run_dir/before" "$run_dir/after"
top_statements "$messages"
