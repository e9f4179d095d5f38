#!/usr/bin/env bash
# The console's pages against a large tenant: a release build, its own durable Postgres, the
# counting sink, Missive (api and worker); PROBE_EMAILS (default 100000) REST emails accepted and
# delivered for one tenant, a few for a second; then every page of the tenant's and the
# operator's console fetched PROBE_FETCHES times (default 20) over a signed-in session, printing
# each page's median and slowest time. The pages' target: every one under 200 ms.
set -euo pipefail
source "$(dirname "$0")/common.sh"
emails=${PROBE_EMAILS:-100000}
start_missive missive.log api worker
key=$(create_key)
other=$(create_key)
echo "== $emails emails for one tenant" >&2
"$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$emails" >&2
"$loadgen" accept --url "$base" --key "$other" --clients 4 --total 100 >&2
wait_for_sink $((emails + 100))
# As after a day's work: the planner's statistics are current.
"$pg_bin/psql" "$db_url" -qAtc "ANALYZE" >/dev/null
python3 bench/console_pages.py "$base" "$key" "$admin_key" "${PROBE_FETCHES:-20}"
