# The inbound MX's row (sourced by bench/run.sh after common.sh): delivery reports into the MX
# of the running Missive (`loadgen mx`), to return paths minted for delivered emails of the
# accept runs, each authenticated, parsed and recorded as an event; reports per second and the
# CPU per report of Missive and Postgres.

MX_TOTAL=${BENCH_MX_TOTAL:-20000}
MX_CLIENTS=${BENCH_MX_CLIENTS:-8}

mx_runs() {
  "$pg_bin/psql" "$db_url" -qAt -F ' ' -c \
    "SELECT tenant_id, email_id, recipient FROM deliveries WHERE status = 'delivered' LIMIT 2000" \
    >"$run_dir/mx_targets"
  local run
  for run in $(seq 1 "$REPEATS"); do
    echo "== mx $run/$REPEATS: $MX_TOTAL delay reports, $MX_CLIENTS connections" >&2
    measured mx "$MX_TOTAL" "$MX_CLIENTS" "$loadgen" mx --addr "127.0.0.1:$mx_port" \
      --secret-key "$MISSIVE_SECRET_KEY" --targets "$run_dir/mx_targets" \
      --domain "$MISSIVE_RETURN_PATH_DOMAIN" --clients "$MX_CLIENTS" --total "$MX_TOTAL"
  done
}
