#!/usr/bin/env bash
# Missive's REST benchmarks on this machine (`make bench`): a release build, its own durable
# Postgres (fsync and synchronous_commit on), a fast SMTP sink as the shared relay, then, each
# BENCH_REPEATS times (default 3):
#   1. REST accept: TOTAL emails from 32 concurrent clients while the worker delivers, and the
#      time until the sink holds all of them (end to end), with the CPU Missive and Postgres spent;
#      then the same through a published template that renders the same body; then the same for a
#      tenant with one webhook endpoint subscribed to every event type (a verifying receiver)
#      while a dispatcher posts, until the receiver holds every event; then webhook delivery
#      alone: the same sent with no dispatcher running, and a dispatcher started on the backlog;
#   2. REST latency: p50/p99 at a fixed 500 requests/s; then tenant reads (`GET /v1/emails/{id}`,
#      closed loop) with their CPU per read;
#   3. SMTP: Postfix's smtp-source (20 sessions, 2 KB messages, SMTP_TOTAL messages) against
#      Missive (a tenant trusting loopback) and against a stock Postfix relaying to the same sink,
#      accept and end-to-end rates for both and their ratios;
#   4. fairness (bench/fairness.sh): a tenant's accept-to-delivery times at 20 emails/s, alone
#      and while another tenant has a 100,000-email backlog towards its own slow server;
#   4b. the inbound MX (bench/mx.sh): delay reports from 8 connections to return paths of
#      delivered emails, each authenticated, parsed and recorded;
#   4c. receiving (bench/receiving.sh): smtp-source's 10 KB messages from 20 sessions into the MX
#      for a tenant's receiving domain (SPF and DMARC checked, stored whole), and into a stock
#      Postfix delivering them to a local mailbox;
#   5. full features (bench/features.sh): each feature alone and all together, by one process
#      with every role; plain and full by two processes (api+smtp, worker+webhooks) sharing a
#      database; and full by the build of BENCH_BASELINE (default 1fca249, the commit whose full
#      run issue 18's target is set against), built once and kept beside the target directory;
#      each configuration against a database of its own in the same cluster;
# and Missive's memory idle, at its peak, and at its peak with every feature on. Everything runs on loopback and stops when the script
# ends. Writes the median/spread table into docs/benchmarks.md (between its bench markers).
set -euo pipefail
source "$(dirname "$0")/common.sh"
source bench/postfix.sh
source bench/fairness.sh
source bench/features.sh
source bench/mx.sh
source bench/receiving.sh

# The first full-features build, for the ratio the target is set against; BENCH_BASELINE= skips.
BASELINE=${BENCH_BASELINE-1fca249}
baseline_bin=
if [ -n "$BASELINE" ] && rev=$(git rev-parse --short=12 "$BASELINE^{commit}" 2>/dev/null); then
  baseline_bin="$target_dir/baseline/missive-$rev"
  export BENCH_BASELINE_REV=$rev
  if [ ! -x "$baseline_bin" ]; then
    echo "== building $rev, the full-features baseline" >&2
    # In a target directory of its own: cargo names a workspace's crates by their path within
    # it, so in the shared one the older tree's crates would pass for this checkout's (same names,
    # same hashes, sources not newer than the outputs) and be linked against the wrong code.
    mkdir -p "$run_dir/baseline-src" "$(dirname "$baseline_bin")"
    git archive "$rev" | tar -x -C "$run_dir/baseline-src"
    (cd "$run_dir/baseline-src" && CARGO_TARGET_DIR="$target_dir/baseline-build" cargo build --release --bin missive >&2)
    cp "$target_dir/baseline-build/release/missive" "$baseline_bin"
  fi
fi
# The fairness scenario's tenant A reaches its own slow server through 2 connections.
export MISSIVE_TENANT_RELAY_MAX_CONNECTIONS=${BENCH_TENANT_RELAY_CONNECTIONS:-2}

RATE=${BENCH_RATE:-500}
SECONDS_AT_RATE=${BENCH_SECONDS:-20}
REPEATS=${BENCH_REPEATS:-3}
measure="python3 bench/measure.py"
results="$run_dir/results.jsonl"

# The MX when the build has one (a build from before it measures the rest alike).
mx_role=
if "$missive" serve --help 2>/dev/null | grep -q -- '- mx:'; then mx_role=mx; fi
if [ -n "$mx_role" ]; then receiving_prepare; fi
start_missive missive.log api smtp $mx_role worker
sleep 1
missive_idle=$($measure rss "$missive_pid")
# Postgres's memory after each run (see measure.py on why not while it runs).
pg_pss() { $measure pss "$pg_pid" >>"$run_dir/pg_pss"; }

delivered_before=0
dispatcher_pid=
# The webhook dispatcher, in its own process so that it can be left out.
start_dispatcher() {
  local main=$missive_pid
  start_missive dispatcher.log webhooks
  dispatcher_pid=$missive_pid missive_pid=$main
}
stop_dispatcher() {
  kill "$dispatcher_pid"; wait "$dispatcher_pid" 2>/dev/null || true
  dispatcher_pid=
}
# Missive's CPU seconds: the main process and the dispatcher when it runs.
missive_cpu() {
  local cpu
  cpu=$($measure cpu "$missive_pid")
  if [ -n "$dispatcher_pid" ]; then cpu=$(python3 -c "print($cpu + $($measure cpu "$dispatcher_pid"))"); fi
  echo "$cpu"
}

# measured SCENARIO TOTAL CLIENTS COMMAND...: runs COMMAND (a closed loop of the load generator,
# which prints a JSON row with its errors) and appends that row with the scenario, the clients
# and the CPU Missive and Postgres spent per unit of TOTAL.
measured() {
  local scenario=$1 total=$2 clients=$3 out missive_cpu pg_cpu
  shift 3
  missive_cpu=$(missive_cpu); pg_cpu=$($measure cpu "$pg_pid")
  out=$("$@")
  echo "$out" >&2
  missive_cpu=$(python3 -c "print($(missive_cpu) - $missive_cpu)")
  pg_cpu=$(python3 -c "print($($measure cpu "$pg_pid") - $pg_cpu)")
  python3 - "$out" >>"$results" <<PY
import json, sys
row = json.loads(sys.argv[1])
assert row["errors"] == 0, "$scenario: a request failed"
row.update(scenario="$scenario", clients=$clients, missive_cpu_us=$missive_cpu * 1e6 / $total,
           pg_cpu_us=$pg_cpu * 1e6 / $total)
print(json.dumps(row))
PY
}

# accept_run SCENARIO [TEMPLATE|webhooks]: TOTAL emails from CLIENTS clients of a new tenant,
# written directly, or (with TEMPLATE, an alias the tenant publishes first) through a template
# that renders the same body, or (webhooks) with an endpoint subscribed to every event type, in
# which case the run lasts until the receiver has verified both events of every email; appends
# the figures.
accept_run() {
  local scenario=$1 template=${2:-} args=() start end accept delivered missive_cpu pg_cpu
  local posts=0
  key=$(create_key)
  if [ "$template" = webhooks ]; then
    subscribe_receiver "$key"
    posts=$((TOTAL * 2))
  elif [ -n "$template" ]; then
    publish_template "$key" "$template"
    args=(--template "$template")
  fi
  echo "== $scenario $run/$REPEATS: $TOTAL emails, $CLIENTS clients" >&2
  missive_cpu=$(missive_cpu); pg_cpu=$($measure cpu "$pg_pid")
  start=$(date +%s.%N)
  accept=$("$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" --total "$TOTAL" \
    "${args[@]}")
  echo "$accept" >&2
  wait_for_sink $((delivered_before + TOTAL))
  local verified=$posts rejected=0
  if [ "$posts" -gt 0 ] && [ -n "$dispatcher_pid" ]; then
    wait_for_receiver "$posts"
    verified=$(received) rejected=$(received rejected)
  fi
  end=$(date +%s.%N)
  missive_cpu=$(python3 -c "print($(missive_cpu) - $missive_cpu)")
  pg_cpu=$(python3 -c "print($($measure cpu "$pg_pid") - $pg_cpu)")
  pg_pss
  delivered=$(( $(count) - delivered_before ))
  delivered_before=$(count)
  python3 - "$accept" >>"$results" <<PY
import json, sys
row = json.loads(sys.argv[1])
row.update(scenario="$scenario", total=$TOTAL, clients=$CLIENTS, delivered=$delivered,
           e2e_per_second=$delivered / ($end - $start),
           missive_cpu_us=$missive_cpu * 1e6 / $TOTAL, pg_cpu_us=$pg_cpu * 1e6 / $TOTAL)
assert row["delivered"] == $TOTAL, "the sink did not receive every email"
assert $verified == $posts and $rejected == 0, "not every webhook arrived verified"
print(json.dumps(row))
PY
}

# webhook_drain: the webhooks_outbox run, with no dispatcher, left two events per email in the
# outbox; a dispatcher started on them posts them all. Appends the posts per second and the CPU
# the dispatcher and Postgres spent per post.
webhook_drain() {
  local posts=$((TOTAL * 2)) start end pg_cpu dispatcher_cpu
  echo "== webhook drain $run/$REPEATS: $posts events" >&2
  pg_cpu=$($measure cpu "$pg_pid")
  start=$(date +%s.%N)
  start_dispatcher
  wait_for_receiver "$posts"
  end=$(date +%s.%N)
  dispatcher_cpu=$($measure cpu "$dispatcher_pid")
  pg_cpu=$(python3 -c "print($($measure cpu "$pg_pid") - $pg_cpu)")
  python3 - >>"$results" <<PY
import json
assert $(received) == $posts and $(received rejected) == 0, "not every webhook arrived verified"
print(json.dumps({"scenario": "webhook_drain", "posts": $posts,
                  "per_second": $posts / ($end - $start),
                  "dispatcher_cpu_us": $dispatcher_cpu * 1e6 / $posts,
                  "pg_cpu_us": $pg_cpu * 1e6 / $posts}))
PY
  tail -n 1 "$results" >&2
  stop_dispatcher
  kill "$receiver_pid" 2>/dev/null || true
}

# Direct and templated runs take turns, so a machine that slows down mid-way weighs on both.
# The runs the targets compare come first in each repeat, the direct one first, each leaving
# only its own inserted rows behind; the runs with posting (tens of thousands of updated rows for
# autovacuum to clean up, which slowed whatever ran next by a fifth) come last.
for run in $(seq 1 "$REPEATS"); do
  accept_run accept
  accept_run webhooks_outbox webhooks
  accept_run templated bench-message
  webhook_drain
  start_dispatcher
  accept_run webhooks webhooks
  stop_dispatcher
  kill "$receiver_pid" 2>/dev/null || true
done

# The accept runs leave ~120,000 updated rows that autovacuum then cleans up; the latency figure is
# for a steady 500 req/s, so it starts once that clean-up has finished (at most two minutes).
settle() {
  local deadline=$(( $(date +%s) + 120 ))
  sleep 65 # autovacuum looks at each database once a minute
  autovacuum_done "$deadline"
}
echo "== waiting for autovacuum to finish" >&2
settle
key=$(create_key) # a tenant without webhooks
for run in $(seq 1 "$REPEATS"); do
  echo "== latency $run/$REPEATS: $RATE/s for ${SECONDS_AT_RATE}s" >&2
  latency=$("$loadgen" latency --url "$base" --key "$key" --rate "$RATE" --seconds "$SECONDS_AT_RATE")
  echo "$latency" >&2
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["scenario"]="latency"; print(json.dumps(r))' \
    "$latency" >>"$results"
done

# Tenant reads: READ_TOTAL `GET /v1/emails/{id}` (the email and its recipients, read as the
# tenant under row-level security) from CLIENTS clients, cycling through 100 of the latency
# tenant's emails; appends the reads per second and the CPU per read.
READ_TOTAL=${BENCH_READ_TOTAL:-20000}
email_paths "$key" >"$run_dir/read_paths"
for run in $(seq 1 "$REPEATS"); do
  echo "== reads $run/$REPEATS: $READ_TOTAL, $CLIENTS clients" >&2
  measured read "$READ_TOTAL" "$CLIENTS" "$loadgen" read --url "$base" --key "$key" \
    --paths "$run_dir/read_paths" --clients "$CLIENTS" --total "$READ_TOTAL"
done

# smtp_run TARGET PORT [settle]: one smtp-source run (with settle, lasting until the webhook
# receiver has stopped counting); appends its figures.
SMTP_TOTAL=${BENCH_SMTP_TOTAL:-20000}
smtp_run() {
  local target=$1 port=$2 before start mid end missive_cpu pg_cpu
  before=$(count)
  missive_cpu=$(missive_cpu); pg_cpu=$($measure cpu "$pg_pid")
  start=$(date +%s.%N)
  smtp-source -s 20 -l 2048 -m "$SMTP_TOTAL" -f bench@acme.test -t rcpt@x.test "127.0.0.1:$port"
  mid=$(date +%s.%N)
  wait_for_sink $((before + SMTP_TOTAL))
  if [ "${3:-}" = settle ]; then wait_for_receiver_quiet; fi
  end=$(date +%s.%N)
  missive_cpu=$(python3 -c "print($(missive_cpu) - $missive_cpu)")
  pg_cpu=$(python3 -c "print($($measure cpu "$pg_pid") - $pg_cpu)")
  if [ "$target" = missive ]; then pg_pss; fi
  python3 - >>"$results" <<PY
import json
delivered = $(count) - $before
assert delivered == $SMTP_TOTAL, f"the sink received {delivered} of $SMTP_TOTAL"
print(json.dumps({"scenario": "smtp", "target": "$target", "total": $SMTP_TOTAL,
                  "accept_per_second": $SMTP_TOTAL / ($mid - $start),
                  "e2e_per_second": $SMTP_TOTAL / ($end - $start),
                  "missive_cpu_us": $missive_cpu * 1e6 / $SMTP_TOTAL,
                  "pg_cpu_us": $pg_cpu * 1e6 / $SMTP_TOTAL}))
PY
}

if postfix_available; then
  smtp_key=$(create_key '{"trusted_networks":["127.0.0.0/8"]}')
  postfix_port=$(free_port)
  start_postfix "$postfix_port" "$sink_port"
  for run in $(seq 1 "$REPEATS"); do
    echo "== smtp $run/$REPEATS: smtp-source, 20 sessions, 2 KB, $SMTP_TOTAL messages" >&2
    smtp_run missive "$smtp_port"
    smtp_run postfix "$postfix_port"
    tail -n 2 "$results" >&2
  done
  # The same with the features SMTP mail can have on: DKIM (acme.test verified), a quota, and an
  # endpoint subscribed to every event type, posted to by a dispatcher. (Templates are a REST
  # feature; one recipient of smtp-source cannot be one in a hundred suppressed.)
  features_db=$db_url dkim_domain=acme.test
  for feature in dkim quota webhooks; do feature_setup "$smtp_key" "$feature"; done
  dkim_domain=
  start_dispatcher
  sleep 1
  for run in $(seq 1 "$REPEATS"); do
    echo "== smtp, full features $run/$REPEATS" >&2
    smtp_run missive_full "$smtp_port" settle
    smtp_run postfix_full "$postfix_port"
    tail -n 2 "$results" >&2
  done
  stop_dispatcher
  kill "$receiver_pid" 2>/dev/null || true
  receiver_pid= receiver_count=/dev/null
  stop_postfix
fi

# Fairness between routes (bench/fairness.sh): after the SMTP runs, when the worker is idle.
fairness

# Reports into the MX (bench/mx.sh), to return paths of the emails delivered so far: last, so
# the rows they write are not vacuumed during the runs the send path is compared by.
if [ -n "$mx_role" ]; then mx_runs; fi
# Mail into the MX for a receiving domain, beside a stock Postfix delivering to a mailbox
# (bench/receiving.sh).
if [ -n "$mx_role" ]; then receiving_runs; fi

missive_peak=$($measure hwm "$missive_pid")
kill "$missive_pid"; wait "$missive_pid" 2>/dev/null || true

# features_missive NAME BINARY ROLE...: a Missive for the full-features runs, against a database
# of its own (NAME, created when missing) and on ports of its own; sets missive_pid, and base when
# it serves the API.
features_missive() {
  local name=$1 bin=$2 port args=()
  shift 2
  for role in "$@"; do args+=(--role "$role"); done
  "$pg_bin/psql" "$db_url" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
    || "$pg_bin/psql" "$db_url" -qc "CREATE DATABASE $name"
  port=$(free_port)
  MISSIVE_DATABASE_URL="${db_url%/*}/$name" MISSIVE_HTTP_ADDR="127.0.0.1:$port" \
    MISSIVE_SMTP_ADDR="127.0.0.1:$(free_port)" MISSIVE_SMTPS_ADDR="127.0.0.1:$(free_port)" \
    MISSIVE_MX_ADDR="127.0.0.1:$(free_port)" "$bin" serve "${args[@]}" 2>>"$run_dir/$name.log" &
  missive_pid=$!
  pids+=($missive_pid)
  if [[ " $* " == *" api "* ]]; then
    base="http://127.0.0.1:$port"
    for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
  fi
}
features_missive features_one "$missive" api worker webhooks
one_pid=$missive_pid one_base=$base
features_missive features_two "$missive" api smtp
two_api=$missive_pid two_base=$base
features_missive features_two "$missive" worker webhooks
two_worker=$missive_pid
if [ -n "$baseline_bin" ]; then
  features_missive features_first "$baseline_bin" api worker webhooks
  first_pid=$missive_pid first_base=$base
fi
sleep 1
# use CONFIG: the runs that follow go to that configuration.
use() {
  features_db="${db_url%/*}/features_$1"
  case $1 in
    one) base=$one_base features_pids=("$one_pid") ;;
    two) base=$two_base features_pids=("$two_api" "$two_worker") ;;
    first) base=$first_base features_pids=("$first_pid") ;;
  esac
}
# In each repeat the full runs the targets compare come first, back to back, in an order turned
# by one each repeat: every run leaves tens of thousands of updated rows whose vacuuming lands on
# the runs after it, which in a fixed order weighed on the later configurations (the first build
# and the two processes ran last, up to a tenth dearer). Then plain by two processes and each
# feature alone.
configs=(one two)
if [ -n "$baseline_bin" ]; then configs+=(first); fi
for run in $(seq 1 "$REPEATS"); do
  for i in $(seq 0 $((${#configs[@]} - 1))); do
    config=${configs[$(( (i + run) % ${#configs[@]} ))]}
    use "$config"
    features_run "$config" full >>"$results"; tail -n 1 "$results" >&2
  done
  use two
  features_run two plain >>"$results"; tail -n 1 "$results" >&2
  use one
  for feature in $FEATURE_RUNS; do
    if [ "$feature" != full ]; then features_run one "$feature" >>"$results"; tail -n 1 "$results" >&2; fi
  done
done

python3 - >>"$results" <<PY
import json
print(json.dumps({"scenario": "memory", "missive_idle_mib": $missive_idle,
                  "missive_peak_mib": $missive_peak,
                  "features_peak_mib": $($measure hwm "$one_pid"),
                  "features_two_peak_mib": max($($measure hwm "$two_api"), $($measure hwm "$two_worker")),
                  "pg_peak_mib": max(float(x) for x in open("$run_dir/pg_pss"))}))
PY
# The hot pure functions, with criterion in quick mode (Missive and Postgres are idle by now).
echo "== criterion: hot paths" >&2
cargo bench -p missive-core --bench hot_paths -- --quick --noplot 2>/dev/null \
  | $measure criterion >>"$results"

$measure report "$results" "${BENCH_DOC:-docs/benchmarks.md}"
