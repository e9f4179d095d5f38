# Shared by the benchmark scripts (sourced, not run): a release build, a private durable Postgres
# (fsync and synchronous_commit on), the counting SMTP sink as the shared relay, and helpers to
# start Missive with given roles. Everything it starts stops when the sourcing script exits.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOTAL=${BENCH_TOTAL:-20000}
CLIENTS=${BENCH_CLIENTS:-32}

cargo build --release --bin missive --bin missive-loadgen >&2
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
# BENCH_MISSIVE: another build of Missive to measure (say, the commit before a change), with
# this checkout's scripts and load generator.
missive=${BENCH_MISSIVE:-$target_dir/release/missive}
loadgen="$target_dir/release/missive-loadgen"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/missive-bench.XXXXXX")
pids=()
cleanup() {
  local status=$?
  # A failed run shows what the processes it started said last.
  if [ "$status" -ne 0 ]; then tail -n 20 "$run_dir"/*.log >&2 2>/dev/null || true; fi
  if declare -F stop_postfix >/dev/null; then stop_postfix || true; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pg.sh destroy "$run_dir/pg" >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pg_args=()
if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then pg_args+=(--statements); fi
db_url=$(scripts/pg.sh start "$run_dir/pg" --port auto "${pg_args[@]}")
pg_pid=$(head -n 1 "$(cat "$run_dir/pg/location")/postmaster.pid")
pg_bin=$(scripts/pg.sh bin)
BENCH_PG_VERSION=$("$pg_bin/postgres" --version | awk '{print $3}')
export BENCH_PG_VERSION
sink_port=$(free_port)
http_port=$(free_port)
smtp_port=$(free_port)
mx_port=$(free_port)
"$loadgen" sink --port "$sink_port" --count-file "$run_dir/sink.count" &
pids+=($!)

# The connection budget covers every connection of a process: 85 is what a process of every
# role opened before it did (a main pool of 48, writers 16, worker 8, dispatcher 8, and 5 to
# LISTEN and register workers), so figures stay comparable across that change.
admin_key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export MISSIVE_DATABASE_URL="$db_url" MISSIVE_ADMIN_KEY="$admin_key" MISSIVE_LOG=warn \
  MISSIVE_HTTP_ADDR="127.0.0.1:$http_port" MISSIVE_SMTP_ADDR="127.0.0.1:$smtp_port" \
  MISSIVE_SMTPS_ADDR="127.0.0.1:$(free_port)" MISSIVE_MX_ADDR="127.0.0.1:$mx_port" MISSIVE_RELAY_URL="smtp://127.0.0.1:$sink_port?tls=none" \
  MISSIVE_DB_MAX_CONNECTIONS="${BENCH_DB_CONNECTIONS:-85}" MISSIVE_RELAY_MAX_CONNECTIONS=16 \
  MISSIVE_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" MISSIVE_WEBHOOK_ALLOW_PRIVATE=true \
  MISSIVE_RETURN_PATH_DOMAIN=bounces.bench.localhost
# Settings come from the environment alone: the checkout's config/missive.toml names the
# sections of this build, which an older build (BENCH_MISSIVE, the baseline) would refuse.
export MISSIVE_CONFIG=/dev/null
base="http://127.0.0.1:$http_port"

# start_missive LOG ROLE...: starts `missive serve` with those roles, sets missive_pid, and waits
# for the API when it is one of them.
start_missive() {
  local log=$1; shift
  local args=()
  for role in "$@"; do args+=(--role "$role"); done
  "$missive" serve "${args[@]}" 2>"$run_dir/$log" &
  missive_pid=$!
  pids+=($missive_pid)
  if [[ " $* " == *" api "* ]]; then
    for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
  fi
}

# autovacuum_done UNTIL: waits until no autovacuum worker runs, or until the time UNTIL (seconds
# since the epoch).
autovacuum_done() {
  while [ "$(date +%s)" -lt "$1" ] && [ "$("$pg_bin/psql" "$db_url" -Atc \
      "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" != 0 ]; do
    sleep 1
  done
}

# create_key [SETTINGS]: a send key of a new tenant, through the admin API, with the tenant's
# settings when given (a JSON object).
create_key() {
  local settings=${1:-"{}"}
  curl -fs -X POST "$base/v1/tenants" -H "Authorization: Bearer $admin_key" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-$(date +%s%N)\",\"settings\":$settings}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"]["token"])'
}

# tenant_of KEY: the key's tenant id.
tenant_of() {
  curl -fs "$base/v1/tenant" -H "Authorization: Bearer $1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# subscribe_receiver KEY: the key's tenant gets one endpoint subscribed to every event type, and a
# `missive-loadgen receiver` behind it that verifies each post with the endpoint's secret; sets
# receiver_pid and receiver_count (its `<verified> <rejected>` file).
receiver_count=/dev/null receiver_pid=
ALL_EVENTS='["email.sent","email.scheduled","email.delivered","email.delivery_delayed","email.bounced","email.failed","email.suppressed","email.canceled"]'
subscribe_receiver() {
  local port secret
  port=$(free_port)
  receiver_count="$run_dir/receiver-$port.count"
  secret=$(curl -fs -X POST "$base/v1/webhooks" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' \
    -d "{\"endpoint\":\"http://127.0.0.1:$port/hook\",\"events\":$ALL_EVENTS}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["signing_secret"])')
  "$loadgen" receiver --port "$port" --count-file "$receiver_count" --secret "$secret" &
  receiver_pid=$!
  pids+=($receiver_pid)
}

# received [verified|rejected]: the receiver's count (verified by default).
received() {
  local line
  line=$(cat "$receiver_count" 2>/dev/null || true)
  line=${line:-0 0}
  if [ "${1:-verified}" = rejected ]; then echo "${line#* }"; else echo "${line%% *}"; fi
}

# wait_for_receiver N: until the receiver has verified N posts, or ten minutes.
wait_for_receiver() {
  local deadline=$(( $(date +%s) + 600 ))
  while [ "$(received)" -lt "$1" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
}

# wait_for_receiver_quiet: until the receiver has stopped counting for a second.
wait_for_receiver_quiet() {
  local last=-1
  while [ "$(received)" != "$last" ]; do last=$(received); sleep 1; done
}

# How many recipients the sink has received.
count() { cat "$run_dir/sink.count" 2>/dev/null || echo 0; }

# wait_for_sink N: until the sink holds N recipients, or ten minutes.
wait_for_sink() {
  local deadline=$(( $(date +%s) + 600 ))
  while [ "$(count)" -lt "$1" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
}

# email_paths KEY: the paths (`/v1/emails/{id}`) of the key's tenant's 100 newest emails.
email_paths() {
  curl -fs "$base/v1/emails?limit=100" -H "Authorization: Bearer $1" | python3 -c \
    'import json,sys; print("\n".join("/v1/emails/" + e["id"] for e in json.load(sys.stdin)["data"]))'
}

# publish_template KEY ALIAS: the key's tenant publishes, under ALIAS, the template that renders
# exactly the body `missive-loadgen accept` sends directly.
publish_template() {
  local id
  id=$("$loadgen" template --alias "$2" | curl -fs -X POST "$base/v1/templates" \
    -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data-binary @- \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -fs -X POST "$base/v1/templates/$id/publish" -H "Authorization: Bearer $1" >/dev/null
}

# With BENCH_PG_STATEMENTS=1 (pg_stat_statements loaded; set before sourcing this file):
# statements_reset forgets what was counted so far; top_statements N prints the 15 statements
# that took Postgres longest since, each with its calls, planning and execution time, buffers
# touched and dirtied, and WAL, per one of N (emails or messages).
statements_reset() {
  if [ "${BENCH_PG_STATEMENTS:-0}" = 1 ]; then
    "$pg_bin/psql" "$db_url" -qAtc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()" >/dev/null
  fi
}
top_statements() {
  if [ "${BENCH_PG_STATEMENTS:-0}" != 1 ]; then return 0; fi
  echo "    per one: calls | plan µs | exec µs | blocks | dirtied | WAL bytes | statement"
  "$pg_bin/psql" "$db_url" -qAt -F ' | ' -c "
    SELECT round(calls::numeric / $1, 2), round((total_plan_time * 1000 / $1)::numeric),
           round((total_exec_time * 1000 / $1)::numeric),
           round((shared_blks_hit + shared_blks_read)::numeric / $1, 1),
           round(shared_blks_dirtied::numeric / $1, 2), round(wal_bytes / $1),
           left(regexp_replace(query, '\s+', ' ', 'g'), 90)
    FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT 15" | sed 's/^/    /'
}
