#!/usr/bin/env bash
# `make run`: a local Missive with its own Postgres under .missive/ and the dev relay, which
# captures outbound mail to .missive/outbox/. Ctrl-C stops Missive, then the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.missive
mkdir -p "$state"

url=$(scripts/pg.sh start "$state/pg" --port "${MISSIVE_PG_PORT:-54329}")

# Dev secrets, generated once and kept in .missive/ (never committed).
if [ ! -s "$state/admin_key" ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/admin_key"
  chmod 600 "$state/admin_key"
fi
if [ ! -s "$state/secret_key" ]; then
  head -c 32 /dev/urandom | base64 > "$state/secret_key"
  chmod 600 "$state/secret_key"
fi

export MISSIVE_DATABASE_URL="${MISSIVE_DATABASE_URL:-$url}"
export MISSIVE_ADMIN_KEY="${MISSIVE_ADMIN_KEY:-$(cat "$state/admin_key")}"
export MISSIVE_SECRET_KEY="${MISSIVE_SECRET_KEY:-$(cat "$state/secret_key")}"
export MISSIVE_RELAY_URL="${MISSIVE_RELAY_URL:-capture:$state/outbox}"
export MISSIVE_HTTP_ADDR="${MISSIVE_HTTP_ADDR:-127.0.0.1:8025}"

cargo build --bin missive
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/missive"

"$bin" serve &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; }
trap stop INT TERM

base="http://$MISSIVE_HTTP_ADDR"
for _ in $(seq 1 200); do
  if (exec 3<>"/dev/tcp/${MISSIVE_HTTP_ADDR%:*}/${MISSIVE_HTTP_ADDR##*:}") 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  cat >&2 <<BANNER

  Missive is running.
    API         $base/v1
    Health      $base/healthz
    Docs        $base/docs   (OpenAPI: $base/openapi.json)
    Admin key   $MISSIVE_ADMIN_KEY
    Database    $MISSIVE_DATABASE_URL
    Outbox      $PWD/$state/outbox

  Create a tenant:
    curl -s -X POST $base/v1/tenants -H "Authorization: Bearer $MISSIVE_ADMIN_KEY" \\
         -H 'Content-Type: application/json' -d '{"name": "Acme"}'

  Press Ctrl-C to stop.

BANNER
fi

status=0
wait "$pid" || status=$?
# A second wait collects the real exit status when the first was interrupted by the trap.
wait "$pid" 2>/dev/null || true
scripts/pg.sh stop "$state/pg"
exit "$status"
