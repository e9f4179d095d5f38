# The receiving row (sourced by bench/run.sh after common.sh and postfix.sh): 10 KB messages from
# Postfix's smtp-source (20 sessions) to any address of a tenant's receiving domain on the
# running Missive's MX, each checked (SPF and DMARC against a local DNS server, DKIM when
# signed), stored whole and posted nowhere; received per second and the CPU per message of
# Missive and Postgres. Then the same into a stock Postfix delivering to a local mailbox
# (virtual(8), one Maildir), accepted and delivered per second and its CPU.
#
# receiving_prepare runs before Missive starts: the DNS server the MX's checks ask (a Python
# dnslib server from the test tools' venv, answers cached by Missive for their TTL), and the
# settings receiving needs here. Without that venv the row is skipped.

RECEIVING_TOTAL=${BENCH_RECEIVING_TOTAL:-20000}
RECEIVING_DOMAIN=inbound.bench.localhost
RECEIVING_SENDER=sender.bench.localhost
receiving_ready=

receiving_prepare() {
  local python zone port
  python=$(scripts/pyenv.sh 2>/dev/null) || { echo "bench: no Python venv; skipping receiving" >&2; return 0; }
  zone="{\"$RECEIVING_SENDER\": {\"TXT\": [\"v=spf1 ip4:127.0.0.1 -all\"]},
         \"_dmarc.$RECEIVING_SENDER\": {\"TXT\": [\"v=DMARC1; p=reject\"]}}"
  "$python" tests/python/dns_server.py "$zone" >"$run_dir/dns.port" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$run_dir/dns.port" ] && break; sleep 0.1; done
  port=$(head -n 1 "$run_dir/dns.port")
  [ -n "$port" ] || { echo "bench: the DNS server did not start; skipping receiving" >&2; return 0; }
  export MISSIVE_DNS_SERVER="127.0.0.1:$port" MISSIVE_RECEIVING_ALLOW_UNVERIFIED=true \
    MISSIVE_RECEIVED_PER_DAY=1000000000 MISSIVE_RECEIVED_STORED_BYTES=1000000000000
  receiving_ready=1
}

# receiving_postfix_mailbox: a Maildir the Postfix instance delivers the receiving domain to.
receiving_postfix_mailbox() {
  local dir="$run_dir/postfix" uid gid
  uid=$(id -u postfix) gid=$(id -g postfix)
  mkdir -p "$dir/mail"
  chown postfix "$dir/mail" 2>/dev/null || $postfix_sudo chown postfix "$dir/mail"
  cat >>"$dir/etc/main.cf" <<CF
virtual_mailbox_domains = $RECEIVING_DOMAIN
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_mailbox_limit = 0
CF
  $postfix_sudo postfix -c "$dir/etc" reload >&2
  receiving_maildir="$dir/mail/box"
}

# mailbox_count: messages Postfix has delivered into the Maildir.
mailbox_count() {
  if [ -d "${receiving_maildir:-}/new" ]; then find "$receiving_maildir/new" -type f | wc -l; else echo 0; fi
}

# receiving_run TARGET PORT: one smtp-source run into TARGET (missive or postfix) on PORT.
receiving_run() {
  local target=$1 port=$2 start mid end missive_cpu pg_cpu postfix_cpu=0 delivered=0 master before
  master=$(cat "$run_dir/postfix/queue/pid/master.pid" 2>/dev/null | tr -d ' ') || true
  missive_cpu=$(missive_cpu); pg_cpu=$($measure cpu "$pg_pid")
  if [ "$target" = postfix ]; then postfix_cpu=$($measure cpu "$master"); fi
  before=$(mailbox_count)
  start=$(date +%s.%N)
  smtp-source -s 20 -l 10240 -m "$RECEIVING_TOTAL" -f "bench@$RECEIVING_SENDER" \
    -t "support@$RECEIVING_DOMAIN" "127.0.0.1:$port"
  mid=$(date +%s.%N)
  if [ "$target" = postfix ]; then
    local deadline=$(( $(date +%s) + 600 ))
    while delivered=$(( $(mailbox_count) - before )) \
        && [ "$delivered" -lt "$RECEIVING_TOTAL" ] && [ "$(date +%s)" -lt "$deadline" ]; do
      sleep 0.05
    done
    postfix_cpu=$(python3 -c "print($($measure cpu "$master") - $postfix_cpu)")
  else
    delivered=$("$pg_bin/psql" "$db_url" -qAt -c \
      "SELECT count(*) FROM received_emails WHERE created_at >= to_timestamp($start)")
  fi
  end=$(date +%s.%N)
  missive_cpu=$(python3 -c "print($(missive_cpu) - $missive_cpu)")
  pg_cpu=$(python3 -c "print($($measure cpu "$pg_pid") - $pg_cpu)")
  python3 - >>"$results" <<PY
import json
assert $delivered == $RECEIVING_TOTAL, f"$target: {$delivered} of $RECEIVING_TOTAL received"
print(json.dumps({"scenario": "receiving", "target": "$target", "total": $RECEIVING_TOTAL,
                  "accept_per_second": $RECEIVING_TOTAL / ($mid - $start),
                  "e2e_per_second": $RECEIVING_TOTAL / ($end - $start),
                  "missive_cpu_us": $missive_cpu * 1e6 / $RECEIVING_TOTAL,
                  "pg_cpu_us": $pg_cpu * 1e6 / $RECEIVING_TOTAL,
                  "postfix_cpu_us": $postfix_cpu * 1e6 / $RECEIVING_TOTAL}))
PY
  tail -n 1 "$results" >&2
}

receiving_runs() {
  [ -n "$receiving_ready" ] || return 0
  local key
  key=$(create_key)
  curl -fs -X POST "$base/v1/domains" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"$RECEIVING_DOMAIN\",\"capabilities\":{\"receiving\":\"enabled\"}}" >/dev/null
  local postfix_port=
  if postfix_available; then
    postfix_port=$(free_port)
    start_postfix "$postfix_port" "$sink_port" && receiving_postfix_mailbox || postfix_port=
  fi
  for run in $(seq 1 "$REPEATS"); do
    echo "== receiving $run/$REPEATS: smtp-source, 20 sessions, 10 KB, $RECEIVING_TOTAL messages" >&2
    receiving_run missive "$mx_port"
    if [ -n "$postfix_port" ]; then receiving_run postfix "$postfix_port"; fi
  done
  stop_postfix
}
