# A private, stock Postfix for side-by-side figures (sourced by bench/run.sh after common.sh):
# its own configuration and queue under the run directory, listening on a loopback port, loopback
# in mynetworks, no local delivery, relaying everything to the benchmark's sink. Installs
# Debian's postfix package (for smtp-source and the server) when missing; Postfix must be started
# as root, so without root (or password-less sudo) the comparison is skipped.

postfix_sudo=""
# postfix_available: installs Postfix if needed; false when it cannot be run here.
postfix_available() {
  if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || { echo "bench: not root and no sudo; skipping Postfix" >&2; return 1; }
    postfix_sudo="sudo"
  fi
  if ! command -v smtp-source >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-source ]; then
    echo "bench: installing Debian's postfix package (smtp-source and the server)" >&2
    echo "postfix postfix/main_mailer_type select No configuration" | $postfix_sudo debconf-set-selections
    $postfix_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >&2
  fi
  [ -x /usr/sbin/postfix ] && [ -f /etc/postfix/master.cf ]
}

# start_postfix PORT RELAY_PORT: starts the instance; it is stopped by the script's cleanup.
start_postfix() {
  local port=$1 relay_port=$2 dir="$run_dir/postfix"
  # Postfix's daemons run as the postfix user and must reach their queue: let it traverse.
  chmod 711 "$run_dir"
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  chown postfix "$dir/data" 2>/dev/null || $postfix_sudo chown postfix "$dir/data"
  cat >"$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
local_transport = error:local delivery is off
relayhost = [127.0.0.1]:$relay_port
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = $dir
maillog_file = $dir/maillog
CF
  # Debian's stock master.cf, with the smtp service moved to our loopback port.
  sed "s/^smtp      inet/127.0.0.1:$port inet/" /etc/postfix/master.cf >"$dir/etc/master.cf"
  if ! $postfix_sudo postfix -c "$dir/etc" check >&2 || ! $postfix_sudo postfix -c "$dir/etc" start >&2; then
    tail -n 5 "$dir/maillog" >&2 2>/dev/null || true
    return 1
  fi
  postfix_etc="$dir/etc"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: Postfix did not start; see $dir/maillog" >&2
  return 1
}

stop_postfix() {
  if [ -n "${postfix_etc:-}" ]; then
    $postfix_sudo postfix -c "$postfix_etc" stop >/dev/null 2>&1 || true
  fi
  postfix_etc=""
}
