#!/usr/bin/env bash
# The compiler-checked SQL's offline data (`.sqlx/`): every `sqlx::query!` in the store is checked
# against a database migrated from `migrations/`, and what the check learned is committed, so a
# build needs no database (`.cargo/config.toml` sets SQLX_OFFLINE).
#
#   scripts/sqlx.sh prepare   rewrite .sqlx/ from the current migrations and statements
#   scripts/sqlx.sh check     fail when .sqlx/ is not what `prepare` would write (CI runs it)
#   scripts/sqlx.sh url       print the URL of a freshly migrated database, to build against it
#                             (SQLX_OFFLINE=false DATABASE_URL=$(scripts/sqlx.sh url) cargo build)
#
# The database is a fresh one in the cluster named by MISSIVE_TEST_DATABASE_URL (the test run's)
# or, without it, in a private cluster under .missive/sqlx-pg. `.sqlx/migrations.sha256` records
# the migrations the data was prepared against; the store's build script refuses to build offline
# when they changed since, so a migration that renames a column fails `cargo build` until the
# data is prepared again, and then fails it at the first statement that still names the column.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "sqlx.sh: $*" >&2; exit 1; }

# A fresh database with every migration applied, each file in one transaction as sqlx runs it.
migrated_database() {
  local server
  if [ -n "${MISSIVE_TEST_DATABASE_URL:-}" ]; then
    server=$MISSIVE_TEST_DATABASE_URL
  else
    server=$(scripts/pg.sh start .missive/sqlx-pg --port auto --fast --db postgres)
  fi
  local base=${server%/*} name="missive_sqlx_$$"
  local psql
  psql="$(scripts/pg.sh bin)/psql"
  PGOPTIONS="-c client_min_messages=warning" "$psql" "$base/postgres" -qX -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $name" \
    -c "CREATE DATABASE $name" >/dev/null
  for migration in migrations/*.sql; do
    PGOPTIONS="-c client_min_messages=warning" "$psql" "$base/$name" -qX -1 -v ON_ERROR_STOP=1 \
      -f "$migration" >/dev/null \
      || die "$migration does not apply"
  done
  echo "$base/$name"
}

drop_database() {
  local psql
  psql="$(scripts/pg.sh bin)/psql"
  "$psql" "${1%/*}/postgres" -qX -c "DROP DATABASE IF EXISTS ${1##*/}" >/dev/null 2>&1 || true
}

# What the migrations are: the digest the build script compares with.
migrations_digest() {
  (cd migrations && for f in $(ls *.sql | sort); do printf '%s\n' "$f"; cat "$f"; done) \
    | sha256sum | cut -d' ' -f1
}

# Writes the offline data of every checked statement into $1, from a migrated database.
describe_into() {
  local out=$1 url
  url=$(migrated_database)
  trap 'drop_database "$url"' RETURN
  mkdir -p "$out"
  # The macros write a statement's data only when they expand, so the crates that hold checked
  # statements are rebuilt.
  find crates -name '*.rs' -path '*/src/*' -exec grep -l 'sqlx::query[a-z_]*!' {} + \
    | sed 's#^crates/\([^/]*\)/.*#\1#' | sort -u | while read -r crate; do
      touch "crates/$crate/src/lib.rs"
    done
  SQLX_OFFLINE=false DATABASE_URL=$url SQLX_OFFLINE_DIR=$out \
    cargo check --workspace --all-targets --quiet
  migrations_digest >"$out/migrations.sha256"
}

case "${1:-}" in
  prepare)
    tmp=$(mktemp -d)
    describe_into "$tmp/data"
    rm -rf .sqlx
    mv "$tmp/data" .sqlx
    rm -rf "$tmp"
    echo "sqlx.sh: .sqlx/ holds $(ls .sqlx/query-*.json 2>/dev/null | wc -l) statements" >&2
    ;;
  check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    describe_into "$tmp/data"
    if ! diff -r .sqlx "$tmp/data" >"$tmp/diff"; then
      head -n 40 "$tmp/diff" >&2
      die ".sqlx/ is stale: run scripts/sqlx.sh prepare and commit .sqlx/"
    fi
    echo "sqlx.sh: .sqlx/ is up to date" >&2
    ;;
  url)
    migrated_database
    ;;
  *)
    die "usage: sqlx.sh prepare|check|url"
    ;;
esac
