#!/usr/bin/env bash
# Webhook delivery alone, for comparing two builds in turns: a release build of this checkout, its
# own durable Postgres, the counting sink, Missive with the api and worker roles, and a tenant with
# one endpoint subscribed to every event type (`missive-loadgen receiver`, which verifies every
# signature). PROBE_EMAILS (default 10000) REST emails are accepted and delivered, which leaves two
# outbox rows each (`email.sent`, `email.delivered`); then a second Missive with only the webhooks
# role drains them. Prints the drain rate and the CPU the dispatcher and Postgres spent per post.
set -euo pipefail
source "$(dirname "$0")/common.sh"
emails=${PROBE_EMAILS:-10000}
start_missive missive.log api worker
key=$(create_key)
subscribe_receiver "$key"
"$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$emails" >/dev/null
wait_for_sink "$emails"
posts=$((emails * 2))
pg_cpu=$(python3 bench/measure.py cpu "$pg_pid")
start=$(date +%s.%N)
start_missive dispatcher.log webhooks
wait_for_receiver "$posts"
end=$(date +%s.%N)
python3 - <<PY
dispatcher = $(python3 bench/measure.py cpu "$missive_pid") * 1e6 / $posts
pg = ($(python3 bench/measure.py cpu "$pg_pid") - $pg_cpu) * 1e6 / $posts
assert $(received) == $posts and $(received rejected) == 0, "not every post arrived verified"
print(f"webhooks {$posts / ($end - $start):,.0f}/s; CPU per post: dispatcher {dispatcher:.0f} µs, "
      f"Postgres {pg:.0f} µs")
PY
