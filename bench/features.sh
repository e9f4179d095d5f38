# What each feature costs per email, alone and all together (sourced by bench/run.sh and
# bench/features_probe.sh, after common.sh). A run sends FEATURES_TOTAL (default 10000) REST
# emails from CLIENTS clients for a new tenant, through the Missive at $base, and lasts until the
# sink holds every email not suppressed and, with webhooks, the receiver has stopped counting:
#   plain      nothing on;
#   template   every email rendered from a published template;
#   dkim       the sender's domain (dkim_domain, default bench.test) verified, so every email is
#              DKIM-signed (RSA 2048);
#   quota      a daily and a monthly quota (never reached), so every accept counts against them;
#   suppress   one recipient in a hundred suppressed;
#   webhooks   one endpoint subscribed to every event type, with its verifying receiver;
#   full       all of them at once.
# The CPU counted is that of the processes in `features_pids` (Missive's) and of Postgres.

FEATURES_TOTAL=${FEATURES_TOTAL:-10000}
FEATURE_RUNS=${FEATURE_RUNS:-plain template dkim quota suppress webhooks full}
features_pids=()

# features_cpu: the CPU seconds of the processes in features_pids.
features_cpu() {
  local total=0 pid
  for pid in "${features_pids[@]}"; do
    total=$(python3 -c "print($total + $(python3 bench/measure.py cpu "$pid"))")
  done
  echo "$total"
}

# feature_setup KEY FEATURE: turns FEATURE on for the key's tenant, adding to `args` what the load
# generator needs for it. (Not run in a command substitution: the webhook receiver it starts would
# hold that substitution's output open.)
feature_setup() {
  local key=$1 feature=$2 id
  case $feature in
    template)
      publish_template "$key" bench-message
      args+=(--template bench-message) ;;
    dkim)
      # Verified by hand: what is measured is signing, not DNS.
      id=$(curl -fs -X POST "$base/v1/domains" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -d "{\"name\":\"${dkim_domain:-bench.test}\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
      "$pg_bin/psql" "$features_db" -qAtc "UPDATE domains SET status = 'verified' WHERE id = '$id'" ;;
    quota)
      curl -fs -X PATCH "$base/v1/tenants/$(tenant_of "$key")" -H "Authorization: Bearer $admin_key" \
        -H 'Content-Type: application/json' \
        -d '{"rate_limit": {"emails_per_day": 1000000000, "emails_per_month": 1000000000}}' >/dev/null ;;
    suppress)
      for start in $(seq 0 10000 $((FEATURES_TOTAL - 1))); do
        python3 -c "import json; print(json.dumps({'emails': ['user%d@sink.test' % i for i in range($start, min($start + 10000, $FEATURES_TOTAL), 100)]}))" \
          | curl -fs -X POST "$base/v1/suppressions/batch/add" -H "Authorization: Bearer $key" \
            -H 'Content-Type: application/json' --data-binary @- >/dev/null
      done ;;
    webhooks) subscribe_receiver "$key" ;;
  esac
}

# features_run LABEL RUN: one run (RUN one of FEATURE_RUNS) against the Missive at $base, whose
# database is $features_db; prints its figures as one JSON row labelled LABEL (the build).
features_run() {
  local label=$1 run=$2 key features suppressed=0 before missive_cpu pg_cpu start accept end
  local posts=0
  key=$(create_key)
  args=()
  features=$run
  if [ "$run" = full ]; then features="template dkim quota suppress webhooks"; fi
  for feature in $features; do
    feature_setup "$key" "$feature"
    if [ "$feature" = suppress ]; then suppressed=$(( (FEATURES_TOTAL + 99) / 100 )); fi
  done
  sleep 0.5 # the caches hear of the new domain and template
  echo "== features, $label: $run, $FEATURES_TOTAL emails, $CLIENTS clients" >&2
  before=$(count)
  missive_cpu=$(features_cpu); pg_cpu=$(python3 bench/measure.py cpu "$pg_pid")
  start=$(date +%s.%N)
  accept=$("$loadgen" accept --url "$base" --key "$key" --clients "$CLIENTS" \
    --total "$FEATURES_TOTAL" "${args[@]}")
  wait_for_sink $((before + FEATURES_TOTAL - suppressed))
  if [[ " $features " == *" webhooks "* ]]; then
    wait_for_receiver_quiet
    posts=$(received)
  fi
  end=$(date +%s.%N)
  python3 - "$accept" <<PY
import json, sys
row = json.loads(sys.argv[1])
delivered = $(count) - $before
assert delivered == $FEATURES_TOTAL - $suppressed, f"the sink received {delivered}: lost or sent twice"
assert row["errors"] == 0, "a send failed"
assert $(received rejected) == 0, "a webhook failed verification"
row.update(scenario="features", build="$label", run="$run", total=$FEATURES_TOTAL,
           delivered=delivered, webhooks=$posts, e2e_per_second=delivered / ($end - $start),
           missive_cpu_us=($(features_cpu) - $missive_cpu) * 1e6 / $FEATURES_TOTAL,
           pg_cpu_us=($(python3 bench/measure.py cpu "$pg_pid") - $pg_cpu) * 1e6 / $FEATURES_TOTAL)
print(json.dumps(row))
PY
  if [ -n "$receiver_pid" ]; then
    kill "$receiver_pid" 2>/dev/null || true
    receiver_pid= receiver_count=/dev/null
  fi
}
