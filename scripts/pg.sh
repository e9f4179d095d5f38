#!/usr/bin/env bash
# Private PostgreSQL clusters for development, tests and benchmarks.
#
#   scripts/pg.sh start DIR [--port N|auto] [--fast] [--statements] [--db NAME]
#                                        start (creating if needed); prints the URL
#   scripts/pg.sh stop DIR                                          stop it (no-op when stopped)
#   scripts/pg.sh destroy DIR                                       stop it and delete DIR
#   scripts/pg.sh url DIR                                           print the URL of a started cluster
#   scripts/pg.sh bin                                               print the server binaries' directory
#
# Uses the system's PostgreSQL server binaries (on PATH, or Debian's /usr/lib/postgresql/*/bin);
# installs Debian's `postgresql` package with apt-get when they are missing. initdb refuses to run
# as root, so as root the cluster runs as the `postgres` user (or a `missive-pg` system user).
# The cluster listens on 127.0.0.1 only, with trust authentication: it is a private, local
# cluster, never a shared server. --fast turns off fsync for throwaway test clusters;
# --statements loads pg_stat_statements (for benchmarks that count statements and buffers).
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }
log() { echo "pg.sh: $*" >&2; }

find_bin() {
  local dir
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    [ -x "$dir/initdb" ] && [ -x "$dir/psql" ] && { echo "$dir"; return 0; }
  fi
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"; return 0
  fi
  return 1
}

install_postgres() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      die "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them with:
    sudo apt-get install -y postgresql
or put a PostgreSQL 13+ bin directory on PATH, then run this again."
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL server binaries not found and apt-get is not available: install PostgreSQL 13+ (initdb, pg_ctl, psql) and put its bin directory on PATH."
  log "installing PostgreSQL with apt-get (package: postgresql)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

bin_dir() {
  find_bin || { install_postgres; find_bin; } || die "PostgreSQL installed but initdb/pg_ctl still not found"
}

# The user that owns and runs the cluster.
run_user() {
  if [ "$(id -u)" -ne 0 ]; then id -un; return; fi
  if id postgres >/dev/null 2>&1; then echo postgres; return; fi
  id missive-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin missive-pg
  echo missive-pg
}

as_user() {
  local user=$1; shift
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

# Where the data lives. Normally DIR/data; as root, when the cluster user cannot reach DIR (a
# checkout under a private home directory), a directory under /var/tmp named after DIR.
data_dir() {
  local dir=$1 user=$2
  if [ -f "$dir/location" ]; then cat "$dir/location"; return; fi
  local data="$dir/data"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u "$user" -- test -x "$dir" 2>/dev/null; then
    data="/var/tmp/missive-pg-$(printf '%s' "$(readlink -f "$dir")" | sha256sum | cut -c1-16)"
  fi
  echo "$data" > "$dir/location"
  echo "$data"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port tries=0
  while [ $tries -lt 200 ]; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 30000 ))
    port_in_use "$port" || { echo "$port"; return; }
    tries=$((tries + 1))
  done
  die "no free port found"
}

cmd_start() {
  local dir="" port="54329" fast=0 statements=0 db="missive"
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port=$2; shift 2 ;;
      --fast) fast=1; shift ;;
      --statements) statements=1; shift ;;
      --db) db=$2; shift 2 ;;
      -*) die "unknown option $1" ;;
      *) dir=$1; shift ;;
    esac
  done
  [ -n "$dir" ] || die "usage: pg.sh start DIR [--port N|auto] [--fast] [--statements] [--db NAME]"
  mkdir -p "$dir"
  dir=$(readlink -f "$dir")
  local bin user data
  bin=$(bin_dir)
  user=$(run_user)
  data=$(data_dir "$dir" "$user")

  if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); fi
  if [ ! -f "$data/PG_VERSION" ]; then
    [ "$port" = auto ] && port=$(free_port)
    log "creating a cluster in $data (PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}'), port $port)"
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown "$user" "$data" && chmod 700 "$data"
    as_user "$user" "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    {
      echo "# written by scripts/pg.sh"
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $port"
      echo "unix_socket_directories = '$data'"
      echo "max_connections = 300"
      echo "shared_buffers = 256MB"
      echo "logging_collector = off"
      if [ $fast -eq 1 ]; then
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
      fi
      if [ $statements -eq 1 ]; then
        echo "shared_preload_libraries = 'pg_stat_statements'"
        echo "pg_stat_statements.track = all"
        echo "pg_stat_statements.track_planning = on"
      fi
    } | as_user "$user" tee -a "$data/postgresql.conf" >/dev/null
    echo "$port" > "$dir/port"
  fi
  port=$(cat "$dir/port")

  if as_user "$user" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "already running on port $port"
  else
    port_in_use "$port" && die "port $port is taken by another program; remove $dir to start over on another port"
    as_user "$user" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$data/server.log" >&2 || true; die "the cluster did not start"; }
  fi
  if [ "$(as_user "$user" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    as_user "$user" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
  local url="postgres://postgres@127.0.0.1:$port/$db"
  echo "$url" > "$dir/url"
  echo "$url"
}

cmd_stop() {
  local dir=${1:?usage: pg.sh stop DIR}
  [ -d "$dir" ] || return 0
  dir=$(readlink -f "$dir")
  [ -f "$dir/location" ] || return 0
  local bin user data
  bin=$(bin_dir); user=$(run_user); data=$(cat "$dir/location")
  if [ -f "$data/PG_VERSION" ] && as_user "$user" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_user "$user" "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    log "stopped the cluster in $data"
  fi
}

cmd_destroy() {
  local dir=${1:?usage: pg.sh destroy DIR}
  [ -d "$dir" ] || return 0
  cmd_stop "$dir"
  dir=$(readlink -f "$dir")
  if [ -f "$dir/location" ]; then rm -rf "$(cat "$dir/location")"; fi
  rm -rf "$dir"
}

cmd_bin() {
  bin_dir
}

cmd_url() {
  local dir=${1:?usage: pg.sh url DIR}
  [ -f "$dir/url" ] || die "no cluster started in $dir"
  cat "$dir/url"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  destroy) shift; cmd_destroy "$@" ;;
  url) shift; cmd_url "$@" ;;
  bin) shift; cmd_bin ;;
  *) die "usage: pg.sh start|stop|destroy|url DIR ... | bin" ;;
esac
